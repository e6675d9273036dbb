"""The relay's budget in a worker: an hour's budget used up makes the org wait, and raising
or removing the limit lets it go on at once (the wait it had worked out is for the old
limits). The limits measured with three worker processes: tests/reliability/."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import update

from herald.db import unit_of_work
from herald.mail.mailer import TooLate
from herald.mailconfig.models import EmailConfig
from herald.marketing.rests import RelayRests
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    fast_runtime,
    status_counts,
    wait_for_status,
    wait_until,
)


def test_a_used_up_hour_waits_until_the_limit_is_raised(runtime, smtp_server):
    engine = fast_runtime(runtime)
    arranged = arrange(engine, smtp_server, 8, max_per_hour=3)
    with InProcessWorker(engine):
        wait_until(lambda: len(smtp_server.messages) == 3)
        time.sleep(1.0)
        assert status_counts(engine, arranged.campaign_id) == Counter(DELIVERED=3, QUEUED=5)
        with unit_of_work(engine.sessions) as session:
            session.execute(
                update(EmailConfig)
                .where(EmailConfig.org_id == arranged.org_id)
                .values(max_per_hour=None)
            )
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=15)
    assert len(smtp_server.messages) == 8


async def check(rests: RelayRests, org_id: uuid.UUID) -> None:
    """What the pool does before a message starts: call the check, await what it answers."""
    waiting = rests.before_start(org_id)()
    if waiting is not None:
        await waiting


def test_a_worker_sees_a_backoff_recorded_elsewhere_within_its_look_and_reads_rarely():
    """Messages starting check the shared backoff through one read per look, shared by
    those starting meanwhile; a backoff another worker records stops this one's next
    message once the look has passed; its own throttle stops them at once."""
    org, other = uuid.uuid4(), uuid.uuid4()
    left = {org: 0.0, other: 0.0}
    reads: list[uuid.UUID] = []

    async def read(fn):  # type: ignore[no-untyped-def]
        org_id = fn.keywords["org_id"]
        reads.append(org_id)
        await asyncio.sleep(0.01)
        return left[org_id]

    async def run() -> None:
        rests = RelayRests(read, look_seconds=0.2)
        await asyncio.gather(*(check(rests, org) for _ in range(20)))
        assert reads == [org]  # twenty messages, one read
        left[org] = 2.0  # recorded by another worker
        await check(rests, org)  # within the look: not seen yet, and no read
        assert reads == [org]
        await asyncio.sleep(0.2)
        with pytest.raises(TooLate):
            await check(rests, org)
        assert reads == [org, org]
        await check(rests, other)  # another org's relay is not resting
        rests.rest(other, 0.5)  # this worker was told "slow down" itself
        with pytest.raises(TooLate):
            await check(rests, other)
        assert reads == [org, org, other]

    asyncio.run(run())
