"""Pause, resume, cancel and scheduling with three `herald worker` processes, a slow relay
and SIGKILLs: what the relay receives after `pause` or `cancel` has answered, and that a
scheduled campaign is launched exactly once (CONTRACT.md, "Sending control")."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, insert, select, text

from herald.audit.models import AuditEvent
from herald.audit.service import CLI, system_actor
from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.marketing.launch import launch_campaign
from herald.marketing.models import MarketingSend
from herald.marketing.worker import BATCHES_IN_FLIGHT, DISPATCH_CHUNK
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
from tests.marketing.factories import Caller, caller
from tests.reliability.conftest import REPORTS
from tests.reliability.fleet import WorkerFleet
from tests.smtp_server import SmtpServer, slow

API = "/api/marketing/campaigns"
WORKERS = 3  # the module's fleet (tests/reliability/conftest.py)
MANY = 30_000  # recipients whose launch lasts long enough to be killed in the middle
MAX_UNKNOWN_PER_CRASH = DISPATCH_CHUNK * BATCHES_IN_FLIGHT


def database(engine: Runtime) -> str:
    return engine.settings.database_url.split(":")[0].split("+")[0]


def emails_in(engine: Runtime, campaign_id: uuid.UUID, status: str) -> set[str]:
    return {s.email for s in sends(engine, campaign_id) if s.status == status}


def received_since(server: SmtpServer, moment: float) -> set[str]:
    return {m.rcpt_tos[0] for m in list(server.messages) if m.at > moment}


def settle(engine: Runtime, campaign_id: uuid.UUID, timeout: float = 60) -> None:
    """Until nothing of the campaign is in flight (workers killed: until their leases end
    and the others record those sends UNKNOWN), then a moment for anything late to show."""
    wait_until(lambda: status_counts(engine, campaign_id)["SENDING"] == 0, timeout=timeout)
    time.sleep(1.0)


@pytest.fixture
def slow_campaign(engine: Runtime, workers: WorkerFleet, smtp_server: SmtpServer) -> Arranged:
    """300 recipients whose relay takes 50 ms a message and allows 6 connections: sending
    lasts a few seconds."""
    arranged = arrange(engine, smtp_server, 300, max_connections=6, launch=False)
    for email in arranged.emails:
        smtp_server.script(email, slow(0.05))
    with unit_of_work(engine.sessions) as session:
        actor = system_actor(arranged.org_id, CLI)
        launch_campaign(session, arranged.org_id, arranged.campaign_id, actor=actor)
    return arranged


@pytest.fixture
def midway(client, engine, slow_campaign, smtp_server) -> tuple[Arranged, Caller]:  # type: ignore[no-untyped-def]
    """The slow campaign once 30 messages have gone, and an ADMIN of its org."""
    admin = caller(client, engine, org_id=slow_campaign.org_id)
    wait_until(lambda: len(smtp_server.messages) >= 30, timeout=60)
    return slow_campaign, admin


def post(client: httpx.Client, who: Caller, campaign_id: uuid.UUID, action: str) -> dict:  # type: ignore[type-arg]
    response = client.post(f"{API}/{campaign_id}/{action}", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_no_new_message_after_pause_answered_and_resume_sends_the_rest_once(
    client, engine, midway, smtp_server
):
    arranged, admin = midway
    paused = post(client, admin, arranged.campaign_id, "pause")
    answered = time.monotonic()
    waiting = emails_in(engine, arranged.campaign_id, "QUEUED")
    assert paused["status"] == "PAUSED" and paused["pausedAt"]
    settle(engine, arranged.campaign_id)
    late = received_since(smtp_server, answered)
    assert not late & waiting, "a message started after pause had answered"
    assert len(late) <= WORKERS * MAX_UNKNOWN_PER_CRASH
    held = len(smtp_server.messages)
    assert campaign(engine, arranged.campaign_id).status == "PAUSED"

    resumed = post(client, admin, arranged.campaign_id, "resume")
    assert resumed["status"] == "SENDING" and resumed["pauseReason"] is None
    wait_for_status(engine, arranged.campaign_id, "SENT", timeout=60)
    REPORTS.append(
        f"control [{database(engine)}] pause with a slow relay: {len(waiting)} waiting, "
        f"{len(late)} in flight completed after the answer, none of the waiting sent "
        f"until resume; {held} before resume, {len(smtp_server.messages)} in all"
    )
    received = smtp_server.received_per_address()
    assert set(received) == set(arranged.emails)
    assert set(received.values()) == {1}
    assert_counters_match_sends(engine, arranged.campaign_id)


def test_cancelled_sends_are_never_sent_and_in_flight_ones_complete(
    client, engine, midway, smtp_server
):
    arranged, admin = midway
    cancelled = post(client, admin, arranged.campaign_id, "cancel")
    answered = time.monotonic()
    assert cancelled["status"] == "CANCELLED" and cancelled["cancelled"] > 0
    never = emails_in(engine, arranged.campaign_id, "CANCELLED")
    assert len(never) == cancelled["cancelled"]
    settle(engine, arranged.campaign_id)
    time.sleep(1.0)
    late = received_since(smtp_server, answered)
    assert not late & never, "a cancelled send was sent"
    assert not set(smtp_server.received_per_address()) & never
    row = campaign(engine, arranged.campaign_id)
    assert row.status == "CANCELLED"
    counts = status_counts(engine, arranged.campaign_id)
    assert set(counts) <= {"DELIVERED", "CANCELLED"}
    assert row.cancelled == counts["CANCELLED"] >= len(never)
    assert row.delivered == counts["DELIVERED"] == len(smtp_server.messages)
    assert row.delivered + row.cancelled == 300 and row.pending == 0
    assert_counters_match_sends(engine, arranged.campaign_id)
    stats = client.get(f"{API}/{arranged.campaign_id}/stats", headers=admin.headers).json()
    assert (stats["cancelled"], stats["pending"]) == (row.cancelled, 0)
    copy = client.post(f"{API}/{arranged.campaign_id}/duplicate", headers=admin.headers)
    assert copy.status_code == 201 and copy.json()["status"] == "DRAFT"
    REPORTS.append(
        f"control [{database(engine)}] cancel with a slow relay: {row.cancelled} cancelled, "
        f"never sent; {len(late)} in flight completed after the answer"
    )


def test_workers_killed_while_paused_lose_nothing_and_resume_sends_each_once(
    client, engine, workers, midway, smtp_server
):
    arranged, admin = midway
    post(client, admin, arranged.campaign_id, "pause")
    answered = time.monotonic()
    waiting = emails_in(engine, arranged.campaign_id, "QUEUED")
    for process, _ in list(workers.workers):  # every worker, whatever it had in flight
        workers.kill(process)
    settle(engine, arranged.campaign_id)  # the new workers record the dead ones' UNKNOWN
    assert not received_since(smtp_server, answered) & waiting
    assert campaign(engine, arranged.campaign_id).status == "PAUSED"
    post(client, admin, arranged.campaign_id, "resume")
    wait_for_status(engine, arranged.campaign_id, "SENT", timeout=60)
    received = smtp_server.received_per_address()
    assert max(received.values()) == 1, "someone got two messages"
    rows = sends(engine, arranged.campaign_id)
    unknown = [s for s in rows if s.status == "UNKNOWN"]
    assert len(unknown) <= WORKERS * MAX_UNKNOWN_PER_CRASH
    for send in rows:
        if send.status == "DELIVERED" or send.email in waiting:
            assert received[send.email] == 1, send.email
    assert {s.status for s in rows} <= {"DELIVERED", "UNKNOWN"}
    assert_counters_match_sends(engine, arranged.campaign_id)
    REPORTS.append(
        f"control [{database(engine)}] {WORKERS} workers SIGKILLed while PAUSED: "
        f"{len(waiting)} waiting sent once after resume, {len(unknown)} UNKNOWN, 0 twice"
    )


def _schedule(client: httpx.Client, who: Caller, campaign_id: uuid.UUID, seconds: float) -> str:
    at = (utcnow() + dt.timedelta(seconds=seconds)).isoformat()
    response = client.post(f"{API}/{campaign_id}/schedule", json={"at": at}, headers=who.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SCHEDULED"
    return at


def _launches(engine: Runtime, campaign_id: uuid.UUID) -> int:
    with unit_of_work(engine.sessions, write=False) as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    AuditEvent.action == "campaign.launched",
                    AuditEvent.target.startswith(f"campaign {campaign_id} "),
                )
            )
            or 0
        )


def test_a_scheduled_campaign_is_launched_once_by_three_workers_within_5_seconds(
    client, engine, workers, smtp_server
):
    arranged = arrange(engine, smtp_server, 200, launch=False)
    admin = caller(client, engine, org_id=arranged.org_id)
    _schedule(client, admin, arranged.campaign_id, 2.0)
    wait_for_status(engine, arranged.campaign_id, "SENT", timeout=60)
    row = campaign(engine, arranged.campaign_id)
    assert row.launched_at is not None and row.scheduled_at is not None
    delay = (row.launched_at - row.scheduled_at).total_seconds()
    assert 0 <= delay <= 5
    assert _launches(engine, arranged.campaign_id) == 1
    assert row.recipients == 200
    received = smtp_server.received_per_address()
    assert set(received) == set(arranged.emails) and set(received.values()) == {1}
    REPORTS.append(
        f"control [{database(engine)}] scheduled with {WORKERS} workers: launched once, "
        f"{delay:.2f} s after its time"
    )


def _add_many_contacts(engine: Runtime, org_id: uuid.UUID, count: int) -> None:
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "email": f"m{i}-{org_id.hex[:6]}@example.com",
            "email_key": f"m{i}-{org_id.hex[:6]}@example.com",
            "first_name": "Many",
            "last_name": "Contacts",
            "company_name": "",
            "status": "LEAD",
            "marketing_opt_out": False,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with unit_of_work(engine.sessions) as session:
        session.execute(insert(Contact), rows)


def _launch_running(engine: Runtime) -> bool:
    """Whether a launch transaction is running right now (and not yet committed)."""
    with engine.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return bool(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND query ILIKE 'INSERT INTO marketing_sends%'"
                    )
                ).scalar()
            )
        # SQLite: the launch holds the writer for as long as its INSERT runs; the idle
        # workers' other writes last a millisecond or two.
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except Exception as exc:  # sqlite3.OperationalError: database is locked
            return "locked" in str(exc)
        raw.execute("ROLLBACK")
        return False


def test_workers_killed_during_a_scheduled_launch_leave_it_launched_exactly_once(
    client, engine, workers, smtp_server
):
    arranged = arrange(engine, smtp_server, 0, launch=False)
    _add_many_contacts(engine, arranged.org_id, MANY)
    admin = caller(client, engine, org_id=arranged.org_id)
    _schedule(client, admin, arranged.campaign_id, 2.0)
    # SQLite: seen locked twice 20 ms apart, so it is not an idle worker's small write
    wait_until(lambda: _launch_running(engine) and _launch_running(engine), 30, 0.02)
    for process, _ in list(workers.workers):
        workers.kill(process)
    status_after_kill = campaign(engine, arranged.campaign_id).status
    wait_until(lambda: campaign(engine, arranged.campaign_id).status == "SENDING", 60)
    post(client, admin, arranged.campaign_id, "cancel")  # so many messages need not go
    assert status_after_kill == "SCHEDULED", "the kill came after the launch had committed"
    assert _launches(engine, arranged.campaign_id) == 1
    with unit_of_work(engine.sessions, write=False) as session:
        rows, contacts = session.execute(
            select(func.count(), func.count(func.distinct(MarketingSend.contact_id))).where(
                MarketingSend.campaign_id == arranged.campaign_id
            )
        ).one()
    assert rows == contacts == MANY == campaign(engine, arranged.campaign_id).recipients
    REPORTS.append(
        f"control [{database(engine)}] {WORKERS} workers SIGKILLed during the scheduled "
        f"launch of {MANY:,} sends: rolled back, then launched exactly once"
    )
