"""The relay budget's arithmetic on a simulated clock: however many workers ask, however
late they use their permits (within LATENESS), the windows hold the contract's bounds, and
while there is demand the rate stays near the limit. The same code runs inside the
database transaction in production (herald.marketing.relay); the real thing, measured at an
SMTP server: tests/reliability/test_relay_limits.py."""

from __future__ import annotations

import bisect
import random

import pytest

from herald.mailconfig.account import RelayLimits
from herald.marketing import budget
from herald.marketing.budget import (
    FIRST_BACKOFF,
    HOUR,
    HOUR_LATENESS,
    LATENESS,
    MAX_BACKOFF,
    UNLIMITED,
    BudgetState,
)

T0 = 1_800_000_000.0  # seconds since the epoch: the simulation's clock starts here


def most_in_window(times: list[float], seconds: float) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered))


def simulate(limits: RelayLimits, seconds: float, askers: int, seed: int) -> list[float]:
    """``askers`` workers asking for 1-50 permits at random moments; each permit used at a
    random moment between its slot and its slot + lateness. Returns when each was used."""
    rng = random.Random(seed)
    state = BudgetState()
    used: list[float] = []
    now = T0
    while now < T0 + seconds:
        now += rng.expovariate(askers * 20)  # each asker asks about 20 times a second
        grant = budget.take(state, limits, now, rng.randint(1, 50))
        for i in range(max(grant.count, 0)):
            used.append(now + grant.slot(i) + rng.uniform(0, grant.lateness * 0.999))
    return used


@pytest.mark.parametrize(
    ("rate", "askers", "seed"), [(1, 3, 1), (14, 3, 2), (40, 6, 3), (500, 3, 4)]
)
def test_per_second_windows_hold_and_the_rate_is_kept(rate, askers, seed):
    limits = RelayLimits(per_second=rate)
    used = simulate(limits, 60, askers, seed)
    assert most_in_window(used, 10.0) <= 11 * rate
    assert most_in_window(used, 1.0) <= 2 * rate
    assert len(used) >= 0.9 * rate * 60


def test_the_rolling_hour_holds_and_the_next_permits_come_when_the_oldest_leave():
    limits = RelayLimits(per_hour=1000)
    rng = random.Random(5)
    state = BudgetState()
    used: list[float] = []
    now = T0
    while now < T0 + 2.5 * HOUR:
        now += rng.uniform(0.5, 20)
        grant = budget.take(state, limits, now, rng.randint(1, 50))
        used += [now + rng.uniform(0, HOUR_LATENESS) for _ in range(grant.count)]
        if grant.count == 0:
            frees = budget.available_at(state, limits, now)
            assert frees is not None and frees > now
            assert budget.take(state, limits, frees - 1, 1).count == 0
            assert budget.take(state, limits, frees, 1).count == 1
            used.append(frees)
            now = frees
    assert most_in_window(used, HOUR) <= 1000
    assert len(used) >= 2 * 1000  # three hours' worth, give or take the slack of a minute


def test_a_permit_given_back_can_be_granted_again():
    limits = RelayLimits(per_hour=10)
    state = BudgetState()
    grant = budget.take(state, limits, T0, 10)
    assert grant.count == 10 and budget.take(state, limits, T0 + 1, 1).count == 0
    budget.give_back(state, grant.minute, 3)
    assert budget.take(state, limits, T0 + 2, 5).count == 3


def test_per_second_and_per_hour_together():
    limits = RelayLimits(per_second=10, per_hour=25)
    used = simulate(limits, 30, 3, 6)
    assert len(used) == 25
    assert most_in_window(used, 1.0) <= 20


def test_slots_are_never_granted_further_ahead_than_the_horizon():
    limits = RelayLimits(per_second=10)
    state = BudgetState()
    first = budget.take(state, limits, T0, 50)
    assert first.count == 10 and first.first == 0 and first.spacing == pytest.approx(0.1)
    assert budget.take(state, limits, T0, 50).count == 0
    assert budget.available_at(state, limits, T0) == pytest.approx(T0 + 0.5)
    assert budget.take(state, limits, T0 + 0.4, 50).count == 0  # its first slot 0.6 s ahead
    later = budget.take(state, limits, T0 + 0.5, 50)
    assert later.count == 5 and later.first == pytest.approx(0.5)
    assert first.lateness == LATENESS < 1.0


def test_no_limit_means_every_permit_now():
    state = BudgetState()
    assert budget.take(state, RelayLimits(), T0, 50) is UNLIMITED
    assert budget.available_at(state, RelayLimits(), T0) is None


def test_a_throttle_rests_the_relay_and_doubles_while_it_repeats():
    limits = RelayLimits(per_second=100)
    state = BudgetState()
    until = budget.note_throttle(state, T0, "421 slow down")
    assert until == T0 + FIRST_BACKOFF and state.backoff_reason == "421 slow down"
    assert budget.take(state, limits, T0 + 0.5, 10).count == 0
    assert budget.available_at(state, limits, T0 + 0.5) == until
    assert budget.note_throttle(state, T0 + 0.5, "421 again") == until  # in-flight answers
    again = budget.note_throttle(state, until + 0.1, "421 still")
    assert again == pytest.approx(until + 0.1 + 2 * FIRST_BACKOFF)
    seconds = 2 * FIRST_BACKOFF
    moment = again
    for _ in range(10):
        moment = budget.note_throttle(state, moment + 0.1, "421")
        seconds = min(seconds * 2, MAX_BACKOFF)
        assert state.backoff_seconds == seconds
    quiet = moment + 10 * MAX_BACKOFF
    assert budget.note_throttle(state, quiet, "421 after a while") == quiet + FIRST_BACKOFF
    assert budget.take(state, limits, quiet + FIRST_BACKOFF, 10).count == 10
