"""Worker processes as operators run them: several at once, SIGKILL, SIGTERM."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.marketing.launch import launch_campaign
from herald.marketing.worker import BATCHES_IN_FLIGHT, DISPATCH_CHUNK
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    serve_process,
    start_worker_process,
    status_counts,
    stop_process,
    wait_for_status,
    wait_until,
)
from tests.smtp_server import slow

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)


def received_counts(server) -> Counter[str]:
    return Counter(m.rcpt_tos[0] for m in server.messages)


def test_two_worker_processes_share_a_campaign_and_never_send_twice(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 600)
    workers = [start_worker_process(rt, concurrency=3) for _ in range(2)]
    try:
        wait_for_status(rt, arranged.campaign_id, "SENT", timeout=120)
    finally:
        for process in workers:
            stop_process(process)
    counts = received_counts(smtp_server)
    assert set(counts) == set(arranged.emails)
    assert max(counts.values()) == 1
    assert status_counts(rt, arranged.campaign_id) == Counter({"DELIVERED": 600})
    assert_counters_match_sends(rt, arranged.campaign_id)
    for process in workers:
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def test_a_sigkilled_worker_loses_nothing_and_sends_nothing_twice(runtime, smtp_server):
    """Kill -9 mid-campaign; a new worker finishes. Sends that were in their SMTP
    transaction at the kill are UNKNOWN (at most one dispatch chunk per batch in flight),
    never re-sent."""
    # long enough that a busy machine cannot make the survivor's own leases lapse
    rt = fast_runtime(runtime, lease_seconds=5)
    arranged = arrange(rt, smtp_server, 300)
    for email in arranged.emails:
        smtp_server.script(email, slow(0.01))
    victim = start_worker_process(rt, concurrency=2)
    wait_until(lambda: len(smtp_server.messages) >= 60, timeout=60)
    time.sleep(random.uniform(0, 0.2))
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    delivered_before_restart = len(smtp_server.messages)
    assert delivered_before_restart < 300, "the kill came too late to test anything"

    survivor = start_worker_process(rt, concurrency=2)
    try:
        wait_for_status(rt, arranged.campaign_id, "SENT", timeout=120)
    finally:
        stop_process(survivor)

    counts = received_counts(smtp_server)
    assert max(counts.values()) == 1, "an address received two messages"
    rows = sends(rt, arranged.campaign_id)
    unknown = [s for s in rows if s.status == "UNKNOWN"]
    assert len(unknown) <= DISPATCH_CHUNK * BATCHES_IN_FLIGHT
    assert all("may have been delivered" in s.error for s in unknown)
    for send in rows:
        if send.status == "DELIVERED":
            assert counts[send.email] == 1, send.email
        else:
            assert send.status == "UNKNOWN"
    # nothing lost: every address got its message, or is UNKNOWN with the reason
    assert {s.email for s in rows if s.status == "DELIVERED"} | {s.email for s in unknown} == set(
        arranged.emails
    )
    assert_counters_match_sends(rt, arranged.campaign_id)


def test_sigterm_finishes_in_flight_messages_and_leaves_the_rest_queued(runtime, smtp_server):
    rt = fast_runtime(runtime, lease_seconds=30)
    arranged = arrange(rt, smtp_server, 400)
    for email in arranged.emails:
        smtp_server.script(email, slow(0.01))
    worker = start_worker_process(rt, concurrency=2)
    wait_until(lambda: len(smtp_server.messages) >= 40, timeout=60)
    stop_process(worker, signal.SIGTERM)
    assert worker.returncode == 0

    counts = status_counts(rt, arranged.campaign_id)
    assert counts["UNKNOWN"] == 0 and counts["SENDING"] == 0
    assert counts["DELIVERED"] == len(smtp_server.messages)
    queued = [s for s in sends(rt, arranged.campaign_id) if s.status == "QUEUED"]
    assert queued and all(s.lease_owner is None for s in queued)

    again = start_worker_process(rt, concurrency=2)
    try:
        wait_for_status(rt, arranged.campaign_id, "SENT", timeout=120)
    finally:
        stop_process(again)
    assert max(received_counts(smtp_server).values()) == 1
    assert campaign(rt, arranged.campaign_id).delivered == 400


def test_herald_serve_runs_a_worker_unless_told_not_to(runtime, smtp_server):
    import os

    rt = fast_runtime(runtime)
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": rt.settings.database_url,
        "HERALD_SECRET_KEY": rt.settings.secret_key,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_SMTP_ALLOWED_NETWORKS": rt.settings.smtp_allowed_networks,
    }

    idle, _ = serve_process(env, "--no-worker")
    try:
        quiet = arrange(rt, smtp_server, 5)
        time.sleep(2)
        assert status_counts(rt, quiet.campaign_id) == Counter({"QUEUED": 5})
    finally:
        stop_process(idle)

    busy, _ = serve_process(env)
    try:
        wait_for_status(rt, quiet.campaign_id, "SENT", timeout=60)
    finally:
        stop_process(busy)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why
    assert busy.returncode in (0, -signal.SIGTERM)
    assert len(smtp_server.messages) == 5


def test_a_slow_server_never_costs_a_live_worker_its_leases(runtime, smtp_server):
    """A chunk that takes longer than the lease: the worker keeps renewing it, so the other
    worker's recovery never declares its in-flight messages UNKNOWN."""
    # The chunk takes 8 s against a 3 s lease, renewed every second: 2 s of slack for a
    # renewal that a busy machine delays (with a 1 s lease, a parallel run lost it).
    engine = fast_runtime(runtime, lease_seconds=3)
    arranged = arrange(engine, smtp_server, 8, launch=False)
    for email in arranged.emails:
        smtp_server.script(email, slow(1.0))
    with unit_of_work(engine.sessions) as session:
        launch_campaign(
            session, arranged.org_id, arranged.campaign_id, actor=system_actor(arranged.org_id, CLI)
        )
    with InProcessWorker(engine, concurrency=1), InProcessWorker(engine, concurrency=1):
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=60)
    assert status_counts(engine, arranged.campaign_id) == Counter(DELIVERED=8)
    assert_counters_match_sends(engine, arranged.campaign_id)
