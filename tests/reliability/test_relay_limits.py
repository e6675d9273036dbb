"""The relay's limits as the relay sees them: a real SMTP server on loopback counts what
three `herald worker` processes send it per second, per 10 seconds, per hour and over how
many connections at once (CONTRACT.md, "Sending control"), on whichever database the run
uses."""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
import uuid
from pathlib import Path

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.marketing.budget import FIRST_BACKOFF
from herald.marketing.launch import launch_campaign
from herald.marketing.relay import backoff_left
from herald.marketing.rests import LOOK_SECONDS
from herald.runtime import Runtime
from tests.marketing.engine import (
    Arranged,
    arrange,
    assert_counters_match_sends,
    campaign,
    sends,
    status_counts,
    wait_for_status,
    wait_until,
)
from tests.reliability.conftest import REPORTS
from tests.reliability.fleet import tcp_peer_ports
from tests.smtp_server import Behaviour, slow


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most events in any window of ``seconds`` (each window starting at an event)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)), default=0
    )


def per_second(times: list[float]) -> list[int]:
    start = min(times)
    counts = [0] * (int(max(times) - start) + 1)
    for t in times:
        counts[int(t - start)] += 1
    return counts


def database(engine) -> str:  # type: ignore[no-untyped-def]
    return engine.settings.database_url.split(":")[0].split("+")[0]


def launch(engine: Runtime, arranged: Arranged) -> None:
    """Launch a campaign arranged unlaunched (its relay scripted first)."""
    with unit_of_work(engine.sessions) as session:
        actor = system_actor(arranged.org_id, CLI)
        launch_campaign(session, arranged.org_id, arranged.campaign_id, actor=actor)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def test_max_per_second_holds_for_three_workers_together(engine, workers, smtp_server):
    """Over any 10 s the relay gets at most 11 x maxPerSecond, over any second at most
    2 x maxPerSecond, and while sends wait at least 90 % of maxPerSecond on average."""
    rate, count = 40, 480
    arranged = arrange(engine, smtp_server, count, max_per_second=rate)
    wait_for_status(engine, arranged.campaign_id, "SENT", timeout=90)
    times = sorted(m.at for m in smtp_server.messages)
    assert len(times) == count
    per_10s, per_1s = most_in_any_window(times, 10.0), most_in_any_window(times, 1.0)
    average = (count - 1) / (times[-1] - times[0])
    REPORTS.append(
        f"limits [{database(engine)}] maxPerSecond={rate}, 3 workers, {count} messages: most "
        f"in any 10 s {per_10s} (bound {11 * rate}), in any 1 s {per_1s} (bound {2 * rate}), "
        f"average {average:.1f}/s (at least {0.9 * rate:g}); per second {per_second(times)}"
    )
    assert per_10s <= 11 * rate
    assert per_1s <= 2 * rate
    assert average >= 0.9 * rate
    assert_counters_match_sends(engine, arranged.campaign_id)


def test_max_per_hour_stops_the_org_without_keeping_the_workers_busy(engine, workers, smtp_server):
    """The hour's budget gone, the rest waits QUEUED and the workers idle: no claims, no
    spinning (their CPU while the org waits is a small fraction of a core)."""
    hourly = 30
    arranged = arrange(engine, smtp_server, 80, max_per_hour=hourly)
    wait_until(lambda: len(smtp_server.messages) >= hourly, timeout=30)
    time.sleep(1.0)  # the last chunks in flight are recorded
    pids = [process.pid for process, _ in workers.workers]
    before, started = cpu_seconds(pids), time.monotonic()
    time.sleep(3.0)
    busy = (cpu_seconds(pids) - before) / (time.monotonic() - started)
    assert not workers.crashed(), workers.crashed()
    REPORTS.append(
        f"limits [{database(engine)}] maxPerHour={hourly}: {len(smtp_server.messages)} sent, "
        f"the rest waiting; 3 idle workers used {busy:.3f} CPU-seconds per second"
    )
    assert len(smtp_server.messages) == hourly
    counts = status_counts(engine, arranged.campaign_id)
    assert counts == {"DELIVERED": hourly, "QUEUED": 80 - hourly}
    assert campaign(engine, arranged.campaign_id).status == "SENDING"
    # idle workers poll (about 0.2 of a core for three, more on a loaded machine); three
    # spinning ones would take both cores
    assert busy < 1.0, f"the waiting workers used {busy:.2f} of a core"


def test_max_connections_holds_across_workers_and_a_dead_workers_slots_come_back(
    engine, workers, smtp_server
):
    """3 workers that would open 4 connections each never hold more than maxConnections
    open at once; a worker killed with its slots gives them back when its lease ends."""
    limit = 3
    arranged = arrange(engine, smtp_server, 300, max_connections=limit, launch=False)
    for email in arranged.emails:
        smtp_server.script(email, slow(0.02))
    launch(engine, arranged)
    wait_until(lambda: len(smtp_server.messages) >= 60, timeout=60)
    holders = [p for p, _ in workers.workers if smtp_server.port in tcp_peer_ports(p.pid)]
    assert holders, "nobody holds a connection to the relay"
    workers.kill(holders[0])  # its slots come back only when their lease runs out
    wait_for_status(engine, arranged.campaign_id, "SENT", timeout=120)
    REPORTS.append(
        f"limits [{database(engine)}] maxConnections={limit}, 3 workers x 4, one holder killed: "
        f"at most {smtp_server.most_open_connections} connections open at once"
    )
    assert smtp_server.most_open_connections <= limit
    received = smtp_server.received_per_address()
    assert max(received.values()) == 1
    assert {s.status for s in sends(engine, arranged.campaign_id)} <= {"DELIVERED", "UNKNOWN"}


class BackoffWatch:
    """Reads the org's relay row every 10 ms from a thread: when (time.monotonic(), the
    clock the SMTP server stamps transactions with) a backoff first became visible to
    anyone, and when it ends. Seen later than committed, never earlier."""

    def __init__(self, runtime: Runtime, org_id: uuid.UUID) -> None:
        self.runtime, self.org_id = runtime, org_id
        self.seen: float | None = None
        self.ends: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set() and self.seen is None:
            asked = time.monotonic()
            with unit_of_work(self.runtime.sessions, write=False) as session:
                left = backoff_left(session, self.org_id)
            if left > 0:
                self.seen, self.ends = time.monotonic(), asked + left
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


READ_SLACK = 0.1  # a worker's read of the backoff on a loaded machine, at most


def test_a_throttling_answer_rests_the_whole_relay(engine, workers, smtp_server):
    """One 421 "slow down" and no worker starts a new transaction on that relay until the
    backoff ends: the others stop the messages they already hold (two chunks each, which
    the relay takes 0.1 s apiece over 4 connections per worker: seconds of work) once they
    look at the shared backoff, at most LOOK_SECONDS after it is recorded. Only transactions
    that had started keep going. Then all is delivered once, the throttled message too."""
    arranged = arrange(engine, smtp_server, 600, launch=False)
    for email in arranged.emails:
        smtp_server.script(email, slow(0.1))
    # the 100th transaction: about 1 s in, when every worker holds 100 messages (two
    # chunks) of its two batches, seconds of work on its 4 connections
    smtp_server.script_at_transaction(
        100, Behaviour(reply="421 4.7.0 Too many messages, slow down", times=1)
    )
    watch = BackoffWatch(engine, arranged.org_id)
    try:
        launch(engine, arranged)
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=120)
    finally:
        watch.stop()
    assert watch.seen is not None and watch.ends is not None, "no backoff was ever recorded"
    # A transaction the server saw this long after the backoff became visible was started
    # by a worker that had looked at it (LOOK_SECONDS) and had time to write its MAIL FROM
    # (the rest: generous, for a loaded machine).
    quiet_from = watch.seen + LOOK_SECONDS + 0.4
    # A worker's view of the backoff ends up to its read's duration before the row's (it
    # counts from before its read, herald.marketing.rests, so that the row decides): a
    # transaction in that last moment is by design.
    quiet_until = watch.ends - READ_SLACK
    starts = sorted(smtp_server.transactions)
    during = [t - watch.seen for t in starts if quiet_from <= t < quiet_until]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    REPORTS.append(
        f"limits [{database(engine)}] one 421 among 600 messages, 3 workers: backoff seen "
        f"{watch.ends - watch.seen:.2f} s before its end, {len(during)} transactions started "
        f"from {quiet_from - watch.seen:.2f} s after it was seen until it ended; longest "
        f"pause in new transactions {max(gaps):.2f} s"
    )
    assert quiet_until - quiet_from >= FIRST_BACKOFF / 4, "the backoff was seen too late to judge"
    assert during == [], f"transactions started while the relay rested: {during}"
    assert max(smtp_server.received_per_address().values()) == 1
    send = next(s for s in sends(engine, arranged.campaign_id) if s.email == smtp_server.picked)
    assert (send.status, send.attempts) == ("DELIVERED", 2)
    assert_counters_match_sends(engine, arranged.campaign_id)


def test_a_limited_org_never_holds_up_another(engine, workers, start_smtp_server):
    """While one org's relay allows 2 messages a second, the same workers send another
    org's whole campaign: claims skip the waiting org instead of waiting on it."""
    slow_relay, fast_relay = start_smtp_server(), start_smtp_server()
    limited = arrange(engine, slow_relay, 100, max_per_second=2)
    wait_until(lambda: len(slow_relay.messages) >= 2, timeout=30)
    other = arrange(engine, fast_relay, 400)
    started = time.monotonic()
    wait_for_status(engine, other.campaign_id, "SENT", timeout=60)
    elapsed = time.monotonic() - started
    limited_sent = len(slow_relay.messages)
    REPORTS.append(
        f"limits [{database(engine)}] an unlimited org's 400 messages took {elapsed:.1f} s "
        f"beside an org limited to 2/s ({limited_sent} of its 100 sent meanwhile)"
    )
    assert len(fast_relay.messages) == 400
    assert limited_sent < 100
    assert campaign(engine, limited.campaign_id).status == "SENDING"
