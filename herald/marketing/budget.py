"""The relay's limits as arithmetic, on the database's clock: permits as time slots, the
rolling hour in minute buckets, and the shared backoff after a throttling answer.

Pure functions over a ``BudgetState``: herald.marketing.relay loads the org's one row,
calls these with the database's ``now``, and stores the state back in the same transaction.

Why slots rather than a count per second: a message granted a slot starts no earlier than
the slot and no later than ``LATENESS`` after it (else it is not sent and asks again), so
the messages started in any window of W seconds had slots in a window of W + LATENESS,
which holds at most ``floor((W + LATENESS) * rate) + 1 <= (W + 1) * rate`` slots: the
contract's 11 x maxPerSecond over 10 seconds, 2 x maxPerSecond over one, whatever the number
of workers. The half second left over covers the time between starting a transaction and
the relay receiving it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from herald.mailconfig.account import RelayLimits

HORIZON = 1.0  # a grant reserves slots at most this far ahead of now
LATENESS = 0.5  # a permit unused this long after its slot is given up (must stay < 1 s)
# Only an hourly limit: no slots, all permits at once; the window is widened by this much.
HOUR_LATENESS = 30.0
HOUR = 3600.0
MINUTE = 60
FIRST_BACKOFF = 2.0  # seconds the relay rests after a throttling answer; doubles while it repeats
MAX_BACKOFF = 64.0


@dataclass
class BudgetState:
    """What the org's row keeps. Times are seconds since the epoch on the database's clock."""

    next_slot: float | None = None  # the first slot nobody holds yet
    minutes: dict[int, int] = field(default_factory=dict)  # minute index -> permits granted
    backoff_until: float | None = None
    backoff_seconds: float = 0.0
    backoff_reason: str | None = None


@dataclass(frozen=True)
class Grant:
    """``count`` permits; the i-th may be used from ``slot(i)`` seconds after the grant's
    ``now`` until ``lateness`` after that."""

    count: int
    first: float = 0.0
    spacing: float = 0.0
    lateness: float = LATENESS
    minute: int | None = None  # the hour bucket they were counted in (to give back unused)

    def slot(self, i: int) -> float:
        return self.first + i * self.spacing


UNLIMITED = Grant(count=-1)  # no rate limit: use as many as you like, now


def _span(limits: RelayLimits) -> float:
    """How long after a grant its permits may still be used."""
    return HORIZON + LATENESS if limits.per_second else HOUR_LATENESS


def _first_counted_minute(limits: RelayLimits, now: float) -> int:
    """The oldest minute bucket whose grants may reach into an hour ending after ``now``."""
    return math.floor((now - HOUR - _span(limits)) / MINUTE)


def used_this_hour(state: BudgetState, limits: RelayLimits, now: float) -> int:
    first = _first_counted_minute(limits, now)
    return sum(n for minute, n in state.minutes.items() if minute >= first)


def in_backoff(state: BudgetState, now: float) -> bool:
    return state.backoff_until is not None and now < state.backoff_until


def take(state: BudgetState, limits: RelayLimits, now: float, wanted: int) -> Grant:
    """Up to ``wanted`` permits, fewer (or none) as the limits and the backoff allow."""
    if wanted <= 0 or in_backoff(state, now):
        return Grant(count=0)
    if not limits.rated:
        return UNLIMITED
    count, first, spacing, start = wanted, 0.0, 0.0, now
    if limits.per_second:
        spacing = 1.0 / limits.per_second
        start = max(state.next_slot or now, now)
        # the first slot at most half a horizon ahead: a batch never waits long for a few
        # permits (it gives its sends back instead, and claims skip the org till then)
        room = math.ceil((now + HORIZON - start) / spacing - 1e-9)
        if start > now + HORIZON / 2:
            room = 0
        count = min(count, max(room, 0))
        first = start - now
    if limits.per_hour:
        count = min(count, max(limits.per_hour - used_this_hour(state, limits, now), 0))
    if count <= 0:
        return Grant(count=0)
    minute = None
    if limits.per_second:
        state.next_slot = start + count * spacing
    if limits.per_hour:
        minute = math.floor(now / MINUTE)
        state.minutes[minute] = state.minutes.get(minute, 0) + count
        oldest = _first_counted_minute(limits, now)
        state.minutes = {m: n for m, n in state.minutes.items() if m >= oldest}
    lateness = LATENESS if limits.per_second else HOUR_LATENESS
    return Grant(count=count, first=first, spacing=spacing, lateness=lateness, minute=minute)


def give_back(state: BudgetState, minute: int | None, count: int) -> None:
    """Permits of the hour that were never used (their slot passed before a connection was
    free): counted out of the bucket they were counted in, so the hour is not used up by
    messages that never went. Slots are not given back: their time has passed."""
    if minute is None or count <= 0 or minute not in state.minutes:
        return
    state.minutes[minute] = max(state.minutes[minute] - count, 0)


def note_throttle(state: BudgetState, now: float, reason: str) -> float:
    """The relay answered "slow down": nobody starts a message to it until the returned time.

    Answers to messages started before the backoff began change nothing; a throttle soon
    after a backoff ended doubles it (up to MAX_BACKOFF), one after a quiet spell starts
    again at FIRST_BACKOFF."""
    if in_backoff(state, now):
        assert state.backoff_until is not None
        return state.backoff_until
    recent = state.backoff_until is not None and now < state.backoff_until + 2 * max(
        state.backoff_seconds, FIRST_BACKOFF
    )
    seconds = min(state.backoff_seconds * 2, MAX_BACKOFF) if recent else FIRST_BACKOFF
    state.backoff_seconds = seconds
    state.backoff_until = now + seconds
    state.backoff_reason = reason[:500]
    return state.backoff_until


def available_at(state: BudgetState, limits: RelayLimits, now: float) -> float | None:
    """When a claim next gets a worthwhile grant (None: now). Claims skip the org until then,
    so no worker polls a relay that has nothing to give."""
    times = []
    if in_backoff(state, now):
        times.append(state.backoff_until or now)
    if limits.per_second and state.next_slot is not None:
        # Half a horizon of free slots at least, so a claim is worth its transaction.
        times.append(state.next_slot - HORIZON / 2)
    if limits.per_hour:
        times.append(_hour_frees_at(state, limits, now))
    later = max(times, default=now)
    return later if later > now else None


def _hour_frees_at(state: BudgetState, limits: RelayLimits, now: float) -> float:
    """When the rolling hour has room for one more permit."""
    assert limits.per_hour is not None
    used = used_this_hour(state, limits, now)
    first = _first_counted_minute(limits, now)
    for minute in sorted(m for m in state.minutes if m >= first):
        if used < limits.per_hour:
            break
        used -= state.minutes[minute]
        # the bucket leaves the counted window once _first_counted_minute passes it
        leaves = (minute + 1) * MINUTE + HOUR + _span(limits)
        if used < limits.per_hour:
            return leaves
    return now
