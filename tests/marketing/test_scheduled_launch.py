"""Scheduled campaigns as a worker launches them: who is eligible is decided at launch
time, a campaign found too late goes back to DRAFT with the reason, one whose launch fails
ends FAILED with it. (Three worker processes and SIGKILLs: tests/reliability/.)"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import delete, select, update

from herald.audit.models import AuditEvent
from herald.audit.service import CLI, system_actor
from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.mailconfig.models import EmailConfig
from herald.marketing.control import schedule_campaign
from herald.marketing.launch import launch_due
from herald.marketing.models import Campaign
from herald.runtime import Runtime
from tests.marketing.engine import (
    InProcessWorker,
    add_contacts,
    arrange,
    campaign,
    fast_runtime,
    sends,
    wait_for_status,
)


def schedule_in(engine: Runtime, org_id: uuid.UUID, campaign_id: uuid.UUID, seconds: float):  # type: ignore[no-untyped-def]
    with unit_of_work(engine.sessions) as session:
        when = utcnow() + dt.timedelta(seconds=seconds)
        schedule_campaign(session, org_id, str(campaign_id), when, actor=system_actor(org_id, CLI))


def set_scheduled_at(engine: Runtime, campaign_id: uuid.UUID, moment: dt.datetime) -> None:
    """As if the campaign had been scheduled for ``moment`` (in the past: Herald was down)."""
    with unit_of_work(engine.sessions) as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status="SCHEDULED", scheduled_at=moment)
        )


def actions_for(engine: Runtime, campaign_id: uuid.UUID) -> list[str]:
    with unit_of_work(engine.sessions, write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target.startswith(f"campaign {campaign_id} "))
                .order_by(AuditEvent.id)
            )
        )


def test_who_is_eligible_is_decided_when_it_launches(runtime, smtp_server):
    engine = fast_runtime(runtime)
    arranged = arrange(engine, smtp_server, 3, launch=False)
    schedule_in(engine, arranged.org_id, arranged.campaign_id, 1.5)
    # after scheduling, before its time: one contact joins, one opts out
    newcomer = f"late-{uuid.uuid4().hex[:6]}@example.com"
    add_contacts(engine, arranged.org_id, [newcomer])
    with unit_of_work(engine.sessions) as session:
        session.execute(
            update(Contact)
            .where(Contact.email == arranged.emails[0])
            .values(marketing_opt_out=True)
        )
    assert campaign(engine, arranged.campaign_id).status == "SCHEDULED"
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=30)
    row = campaign(engine, arranged.campaign_id)
    assert row.recipients == 3
    assert row.launched_at is not None and row.scheduled_at is not None
    assert row.launched_at >= row.scheduled_at
    received = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert received == sorted([*arranged.emails[1:], newcomer])
    assert actions_for(engine, arranged.campaign_id) == ["campaign.scheduled", "campaign.launched"]


def test_one_found_later_than_the_grace_goes_back_to_draft_with_the_reason(runtime, smtp_server):
    engine = fast_runtime(runtime, schedule_grace_seconds=3600)
    arranged = arrange(engine, smtp_server, 3, launch=False)
    set_scheduled_at(engine, arranged.campaign_id, utcnow() - dt.timedelta(hours=2))
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "DRAFT", timeout=30)
    row = campaign(engine, arranged.campaign_id)
    assert row.failure_reason and "missed its scheduled time" in row.failure_reason
    assert "120 minutes late" in row.failure_reason
    assert (row.scheduled_at, row.launched_at, row.recipients) == (None, None, 0)
    assert sends(engine, arranged.campaign_id) == [] and smtp_server.messages == []
    assert actions_for(engine, arranged.campaign_id) == ["campaign.schedule_missed"]


def test_one_found_late_within_the_grace_is_still_launched(runtime, smtp_server):
    engine = fast_runtime(runtime, schedule_grace_seconds=3600)
    arranged = arrange(engine, smtp_server, 2, launch=False)
    set_scheduled_at(engine, arranged.campaign_id, utcnow() - dt.timedelta(minutes=10))
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=30)
    assert len(smtp_server.messages) == 2


def test_a_launch_that_fails_at_its_time_leaves_it_failed_with_the_reason(runtime, smtp_server):
    engine = fast_runtime(runtime)
    arranged = arrange(engine, smtp_server, 2, launch=False)
    schedule_in(engine, arranged.org_id, arranged.campaign_id, 1.0)
    with unit_of_work(engine.sessions) as session:  # the email configuration goes away
        session.execute(delete(EmailConfig).where(EmailConfig.org_id == arranged.org_id))
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "FAILED", timeout=30)
    assert "SMTP is not configured" in (campaign(engine, arranged.campaign_id).failure_reason or "")
    assert smtp_server.messages == []


def test_workers_finding_it_due_at_the_same_moment_launch_it_once(runtime, smtp_server):
    """Four workers' launches of the same due campaign at once: exactly one launches it,
    the others find it no longer SCHEDULED."""
    engine = fast_runtime(runtime)
    arranged = arrange(engine, smtp_server, 30, launch=False)
    set_scheduled_at(engine, arranged.campaign_id, utcnow() - dt.timedelta(seconds=1))
    start = threading.Barrier(4)

    def launch_it() -> str | None:
        start.wait()
        with unit_of_work(engine.sessions) as session:
            launched = launch_due(session, arranged.campaign_id, grace_seconds=3600)
            return launched.status if launched is not None else None

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: launch_it(), range(4)))
    assert (results.count("SENDING"), results.count(None)) == (1, 3)
    assert len(sends(engine, arranged.campaign_id)) == 30
    assert campaign(engine, arranged.campaign_id).recipients == 30
    assert actions_for(engine, arranged.campaign_id) == ["campaign.launched"]
