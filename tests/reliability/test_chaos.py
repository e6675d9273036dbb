"""Chaos: a campaign sent by several `herald worker` processes that are SIGKILLed at random
moments and restarted, into an SMTP server that answers 421/451/550, hangs up at DATA and
after the final dot, and stalls. Afterwards every invariant of docs/guarantees.md holds.

`make test` runs it at a bounded size; `make chaos` runs it bigger (the sizes come from
HERALD_CHAOS_RECIPIENTS, HERALD_CHAOS_WORKERS, HERALD_CHAOS_KILLS; HERALD_CHAOS_SEED replays
a run)."""

from __future__ import annotations

import os
import random
import secrets
import time

import pytest

from herald.marketing.worker import BATCHES_IN_FLIGHT, DISPATCH_CHUNK
from tests.marketing.engine import arrange, campaign, fast_runtime
from tests.reliability.chaos_smtp import ChaosSmtp
from tests.reliability.conftest import REPORTS
from tests.reliability.fleet import WorkerFleet
from tests.reliability.invariants import check_campaign, unknown_reasons

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

RECIPIENTS = int(os.environ.get("HERALD_CHAOS_RECIPIENTS", "5000"))
WORKERS = int(os.environ.get("HERALD_CHAOS_WORKERS", "3"))
KILLS = int(os.environ.get("HERALD_CHAOS_KILLS", "10"))
MAX_UNKNOWN_PER_CRASH = DISPATCH_CHUNK * BATCHES_IN_FLIGHT


def test_kills_and_a_misbehaving_server_lose_nothing_and_send_nothing_twice(runtime):
    seed = int(os.environ.get("HERALD_CHAOS_SEED") or secrets.randbelow(2**32))
    print(f"chaos seed {seed} (replay: HERALD_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    engine = fast_runtime(runtime, lease_seconds=2, retry_base_seconds=0.2, retry_window_seconds=8)
    server = ChaosSmtp(seed).start()
    fleet = None
    started = time.monotonic()
    try:
        arranged = arrange(engine, server, RECIPIENTS)
        fleet = WorkerFleet(engine, WORKERS, rng)
        # Kill while sending: the first kill once mail flows, then every 0.3-1.2 s.
        deadline = time.monotonic() + 300
        while not server.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        while fleet.kills < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            fleet.kill_one()
        kills_done_after = time.monotonic() - started
        sending_when_last_killed = campaign(engine, arranged.campaign_id).status == "SENDING"
        while campaign(engine, arranged.campaign_id).status != "SENT":
            assert time.monotonic() < deadline, "the campaign did not finish within 5 minutes"
            assert not fleet.crashed(), fleet.crashed()
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        outcome = check_campaign(
            engine,
            arranged.campaign_id,
            {e.lower() for e in arranged.emails},
            server.received_per_address(),
        )
        bound = fleet.kills * MAX_UNKNOWN_PER_CRASH + server.faults["drop_after_dot"]
        REPORTS.append(
            f"chaos [{engine.settings.database_url.split(':')[0]}] seed={seed}: "
            f"{outcome.recipients} recipients, {WORKERS} workers, {fleet.kills} SIGKILLs "
            f"(last after {kills_done_after:.1f} s, campaign still sending: "
            f"{sending_when_last_killed}), faults {dict(server.faults)}; "
            f"delivered {outcome.delivered}, failed {outcome.failed}, unknown {outcome.unknown} "
            f"(of which received {outcome.unknown_received}; bound {bound}), "
            f"duplicates {outcome.duplicates}, lost {outcome.lost}, {elapsed:.1f} s; "
            f"UNKNOWN reasons {dict(unknown_reasons(engine, arranged.campaign_id))}"
        )
        assert fleet.kills >= KILLS
        assert sending_when_last_killed, "every kill must land while the campaign is sending"
        assert outcome.unknown <= bound
        assert server.faults["defer_451"] and server.faults["close_421"]
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
