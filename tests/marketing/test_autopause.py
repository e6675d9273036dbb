"""A campaign pauses itself, with `pauseReason`, when the relay refuses Herald's login or
when HERALD_AUTOPAUSE_FAILURES sends in a row fail for a reason that is not their
recipient's; the sends that waited stay QUEUED and a resume sends them once it is fixed.
A relay that cannot be reached for a moment only holds the campaign (it retries by itself)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select, update

from herald.audit.models import AuditEvent
from herald.audit.service import Actor
from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from herald.marketing.control import resume_campaign
from herald.marketing.launch import target
from herald.secretbox import SecretBox
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    status_counts,
    wait_for_status,
    wait_until,
)
from tests.orgs.factories import make_user
from tests.smtp_server import Behaviour, SmtpServer, drop, free_port


def resume(engine, arranged) -> None:  # type: ignore[no-untyped-def]
    who = make_user(engine, arranged.org_id, "ADMIN")
    actor = Actor(org_id=arranged.org_id, name=who.email, user_id=who.id)
    with unit_of_work(engine.sessions) as session:
        resume_campaign(session, arranged.org_id, str(arranged.campaign_id), actor=actor)


def paused_events(engine, campaign_row) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with unit_of_work(engine.sessions, write=False) as session:
        rows = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "campaign.paused",
                    AuditEvent.target == target(campaign_row),
                )
            )
        )
        session.expunge_all()
        return rows


def test_a_refused_login_pauses_the_campaign_and_a_resume_sends_it_once_fixed(
    runtime, start_smtp_server
):
    engine = fast_runtime(runtime, smtp_verify_tls=False)
    server = start_smtp_server(tls="starttls", credentials=("mailer", "right-password"))
    arranged = arrange(
        engine, server, 5, username="mailer", password="wrong-password", security="starttls"
    )
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "PAUSED", timeout=30)
        row = campaign(engine, arranged.campaign_id)
        assert "535" in row.pause_reason and "Settings" in row.pause_reason
        assert status_counts(engine, arranged.campaign_id) == Counter({"QUEUED": 5})
        assert server.messages == []
        [event] = paused_events(engine, row)
        assert event.actor == "herald worker" and event.details["automatic"] is True

        with unit_of_work(engine.sessions) as session:
            sealed = SecretBox(engine.settings.secret_key, "herald.smtp").seal("right-password")
            session.execute(
                update(EmailConfig)
                .where(EmailConfig.org_id == arranged.org_id)
                .values(password_sealed=sealed)
            )
        resume(engine, arranged)
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=30)
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(arranged.emails)
    assert campaign(engine, arranged.campaign_id).pause_reason is None
    assert_counters_match_sends(engine, arranged.campaign_id)


def test_530_authentication_required_pauses_it_with_the_sends_waiting(runtime, start_smtp_server):
    """The relay wants a login Herald was not given: it answers 530 to MAIL FROM."""
    engine = fast_runtime(runtime)
    server = start_smtp_server(credentials=("mailer", "s3cret"))
    arranged = arrange(engine, server, 4)
    with InProcessWorker(engine):
        wait_for_status(engine, arranged.campaign_id, "PAUSED", timeout=30)
    row = campaign(engine, arranged.campaign_id)
    assert "530" in row.pause_reason
    assert status_counts(engine, arranged.campaign_id) == Counter({"QUEUED": 4})
    assert row.failed == 0 and row.failure_streak == 0


def test_a_run_of_relay_failures_pauses_it_with_the_last_reason(runtime, smtp_server):
    """Every connection is cut at RCPT: no answer about anyone. After 6 in a row the
    campaign pauses; nobody is failed; each send waits QUEUED for the resume."""
    engine = fast_runtime(runtime, autopause_failures=6, retry_base_seconds=0.05)
    arranged = arrange(engine, smtp_server, 20)
    for email in arranged.emails:
        smtp_server.script(email, drop(stage="rcpt"))
    with InProcessWorker(engine, concurrency=1):
        wait_for_status(engine, arranged.campaign_id, "PAUSED", timeout=30)
        wait_until(lambda: status_counts(engine, arranged.campaign_id)["SENDING"] == 0)
    row = campaign(engine, arranged.campaign_id)
    assert row.pause_reason.startswith("6 messages in a row could not be sent")
    assert "connection lost" in row.pause_reason
    assert status_counts(engine, arranged.campaign_id) == Counter({"QUEUED": 20})
    assert smtp_server.messages == []
    assert len(paused_events(engine, row)) == 1


def test_an_answer_about_a_recipient_ends_the_run(runtime, smtp_server):
    """Four cut connections, a delivery, four more: never six in a row, so no pause; the
    cut ones are retried and delivered."""
    engine = fast_runtime(runtime, autopause_failures=6, retry_base_seconds=0.05)
    arranged = arrange(engine, smtp_server, 9)
    once = Behaviour(drop=True, stage="rcpt", times=1)
    in_queue_order = [s.email for s in sends(engine, arranged.campaign_id)]
    for i, email in enumerate(in_queue_order):
        if i != 4:
            smtp_server.script(email, once)
    with InProcessWorker(engine, concurrency=1):
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=30)
    assert len(smtp_server.messages) == 9
    assert campaign(engine, arranged.campaign_id).pause_reason is None


def test_an_unreachable_relay_holds_the_campaign_then_a_run_of_it_pauses_it(runtime):
    """Connection refused: each chunk that could not go counts its sends; below the limit
    the campaign only waits (holdReason) and retries by itself, at it, it pauses."""
    engine = fast_runtime(runtime, autopause_failures=30, retry_base_seconds=0.3)
    nowhere = SmtpServer(port=free_port())  # never started: connections are refused
    arranged = arrange(engine, nowhere, 20)
    with InProcessWorker(engine):
        held = wait_until(lambda: campaign(engine, arranged.campaign_id).hold_reason)
        assert "cannot reach SMTP server" in held
        assert campaign(engine, arranged.campaign_id).status == "SENDING"  # 20 of 30
        wait_for_status(engine, arranged.campaign_id, "PAUSED", timeout=30)  # 40 of 30
    row = campaign(engine, arranged.campaign_id)
    assert "cannot reach SMTP server" in row.pause_reason
    assert status_counts(engine, arranged.campaign_id) == Counter({"QUEUED": 20})
