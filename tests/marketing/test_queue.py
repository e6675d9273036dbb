"""The queue's rules, directly: exclusive claims, and no dispatch on a lapsed lease."""

from __future__ import annotations

import time

from herald.db import unit_of_work
from herald.marketing import queue
from tests.marketing.engine import arrange, status_counts


def test_a_worker_whose_lease_lapsed_sends_nothing_another_worker_took(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 5)
    with unit_of_work(runtime.sessions) as session:
        slow = queue.claim_batch(session, "worker-a", lease_seconds=0.2)
    assert slow is not None and len(slow.sends) == 5
    time.sleep(0.4)  # worker A stalls past its lease
    with unit_of_work(runtime.sessions) as session:
        fast = queue.claim_batch(session, "worker-b", lease_seconds=30)
    assert fast is not None and {s.id for s in fast.sends} == {s.id for s in slow.sends}
    with unit_of_work(runtime.sessions) as session:
        go_a, _ = queue.start_dispatch(session, "worker-a", slow.campaign_id, slow.sends)
    with unit_of_work(runtime.sessions) as session:
        go_b, _ = queue.start_dispatch(session, "worker-b", fast.campaign_id, fast.sends)
    assert go_a == []
    assert len(go_b) == 5
    assert status_counts(runtime, arranged.campaign_id) == {"SENDING": 5}


def test_an_expired_lease_is_not_dispatched_even_if_nobody_else_claimed(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 3)
    with unit_of_work(runtime.sessions) as session:
        batch = queue.claim_batch(session, "worker-a", lease_seconds=0.1)
    assert batch is not None
    time.sleep(0.3)
    with unit_of_work(runtime.sessions) as session:
        go, _ = queue.start_dispatch(session, "worker-a", batch.campaign_id, batch.sends)
    assert go == []
    assert status_counts(runtime, arranged.campaign_id) == {"QUEUED": 3}


def test_two_claims_never_share_a_send(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 150)
    seen: set[int] = set()
    for owner in ("a", "b", "c"):
        with unit_of_work(runtime.sessions) as session:
            batch = queue.claim_batch(session, owner, lease_seconds=30)
        if batch is None:
            break
        ids = {s.id for s in batch.sends}
        assert not ids & seen
        seen |= ids
    assert len(seen) == 150
    assert status_counts(runtime, arranged.campaign_id) == {"QUEUED": 150}


def test_an_idle_worker_sees_due_sends_without_claiming_them(runtime, smtp_server):
    def due() -> bool:
        with unit_of_work(runtime.sessions, write=False) as session:
            return queue.has_due_sends(session)

    arranged = arrange(runtime, smtp_server, 2)
    assert due()
    assert due()  # asking claims nothing
    with unit_of_work(runtime.sessions) as session:
        batch = queue.claim_batch(session, "worker-a", lease_seconds=30)
    assert batch is not None and len(batch.sends) == 2
    assert not due()  # leased to a live worker: nothing for another one
    with unit_of_work(runtime.sessions) as session:
        queue.release(session, "worker-a", [s.id for s in batch.sends])
    assert due()
    assert status_counts(runtime, arranged.campaign_id) == {"QUEUED": 2}
