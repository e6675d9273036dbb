"""The buffered hit recorder behind the pixel: hits survive a failed flush, memory is bounded."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from herald.marketing import hits
from herald.marketing.hits import HitRecorder
from herald.marketing.opens import record_opens
from tests.marketing.engine import arrange, campaign, mark_delivered, sends


def test_a_flush_that_fails_on_the_database_keeps_its_hits_for_the_next(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 2)
    mark_delivered(runtime, arranged.campaign_id)
    tokens = [send.token for send in sends(runtime, arranged.campaign_id)]
    failures = [OperationalError("UPDATE", {}, Exception("database is away"))]

    def write(session: Session, batch: list[tuple[str, str]]) -> int:
        if failures:
            raise failures.pop()
        return record_opens(session, batch)

    async def scenario() -> tuple[int, int]:
        recorder = HitRecorder(runtime, write, "opens")
        for token in (*tokens, tokens[0]):
            recorder.hit((token, ""))
        await recorder.flush()
        after_failure = campaign(runtime, arranged.campaign_id).opens
        await recorder.flush()
        return after_failure, campaign(runtime, arranged.campaign_id).opens

    assert asyncio.run(scenario()) == (0, 2)


def test_hits_past_the_bound_are_dropped_not_kept(runtime, smtp_server, monkeypatch):
    arranged = arrange(runtime, smtp_server, 3)
    mark_delivered(runtime, arranged.campaign_id)
    tokens = sorted(send.token for send in sends(runtime, arranged.campaign_id))
    monkeypatch.setattr(hits, "MAX_PENDING", 2)

    async def scenario() -> int:
        recorder = HitRecorder(runtime, record_opens, "opens")
        for token in tokens:
            recorder.hit((token, ""))
        await recorder.stop()  # the last flush, as at shutdown
        return campaign(runtime, arranged.campaign_id).opens

    assert asyncio.run(scenario()) == 2


def test_the_task_flushes_by_itself(runtime, smtp_server):
    interval = 0.05
    arranged = arrange(runtime, smtp_server, 1)
    mark_delivered(runtime, arranged.campaign_id)
    token = sends(runtime, arranged.campaign_id)[0].token

    async def scenario() -> int:
        recorder = HitRecorder(runtime, record_opens, "opens", interval)
        recorder.start()
        recorder.hit((token, ""))
        for _ in range(100):
            await asyncio.sleep(interval)
            if campaign(runtime, arranged.campaign_id).opens:
                break
        opens = campaign(runtime, arranged.campaign_id).opens
        await recorder.stop()
        return opens

    assert asyncio.run(scenario()) == 1
