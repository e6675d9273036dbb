"""Launching a campaign: one transaction that takes the DRAFT, creates every send, and queues them.

The sends are created with one INSERT ... SELECT, so a launch to a million contacts never
holds them in Python memory. The rows go in sorted by token: the token index's keys are
random, and sorted inserts visit its pages in order instead of a random page per row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, String, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.crm.models import Contact
from herald.db import UTCDateTime, db_now, utcnow
from herald.errors import Conflict
from herald.mailconfig.service import sending_defaults
from herald.marketing.audience import eligible_contacts
from herald.marketing.links import store_links
from herald.marketing.models import Campaign, CampaignStatus, MarketingSend, SendStatus
from herald.marketing.repository import CampaignRepository, campaign_in_any_org


class LaunchFailed(Conflict):
    """The launch itself failed; the campaign is now FAILED with the reason (kept)."""

    keep_changes = True


def random_token_sql(dialect: str) -> ColumnElement[str]:
    """64 hex characters (32 bytes) from the database's CSPRNG, evaluated once per row."""
    if dialect == "postgresql":
        # two v4 UUIDs (244 random bits) as bytes, hex-encoded at once: no text to strip
        both = func.uuid_send(func.gen_random_uuid()).op("||")(
            func.uuid_send(func.gen_random_uuid())
        )
        return func.encode(both, "hex", type_=String)
    return func.lower(func.hex(func.randomblob(32)))


# SQLite's page cache for the launch's statement (KiB, as PRAGMA cache_size takes it when
# negative); its sort spills to a temporary file beyond this, so memory stays bounded
# whatever the audience size.
SQLITE_LAUNCH_CACHE_KIB = 32 * 1024


@contextmanager
def bulk_insert_settings(connection: Connection) -> Iterator[None]:
    """SQLite: a larger page cache while the sends are inserted, then the pooled
    connection's own size back. PostgreSQL needs nothing."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = int(connection.exec_driver_sql("PRAGMA cache_size").scalar() or 0)
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_LAUNCH_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={previous}")


def _fail(
    session: Session, campaign: Campaign, reason: str, code: str, expected: CampaignStatus
) -> LaunchFailed:
    taken = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == expected.value)
        .values(status=CampaignStatus.FAILED.value, failure_reason=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return LaunchFailed("Only a DRAFT campaign can be launched.", code="not_draft")
    session.refresh(campaign)
    return LaunchFailed(reason, code=code, details={"status": CampaignStatus.FAILED.value})


def launch_problem(
    session: Session, org_id: uuid.UUID, campaign: Campaign
) -> tuple[str, str] | None:
    """Why a launch of ``campaign`` would fail now (the reason and its code), or None."""
    defaults = sending_defaults(session, org_id)
    if defaults is None:
        return (
            "SMTP is not configured: set it up under Settings → Email configuration.",
            "smtp_not_configured",
        )
    if not (campaign.from_email or defaults.from_email):
        return (
            "No sender address: give the campaign a From email or set the default one "
            "under Settings → Email configuration.",
            "sender_missing",
        )
    return None


def launch_campaign(
    session: Session,
    org_id: uuid.UUID,
    campaign_id: str | uuid.UUID,
    *,
    actor: audit.Actor,
    scheduled: bool = False,
) -> Campaign:
    """DRAFT (or, ``scheduled``, SCHEDULED) -> SENDING with one QUEUED send per eligible
    contact; 409 unless the campaign has that status.

    Two launches at once (two requests, or two workers finding a scheduled campaign due):
    the conditional UPDATE lets exactly one of them win.
    """
    expected = CampaignStatus.SCHEDULED if scheduled else CampaignStatus.DRAFT
    campaign = CampaignRepository(session, org_id).get_for_update(campaign_id)
    if campaign.status != expected.value:
        raise Conflict("Only a DRAFT campaign can be launched.", code="not_draft")
    problem = launch_problem(session, org_id, campaign)
    if problem is not None:
        raise _fail(session, campaign, *problem, expected)

    now = utcnow()
    taken = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == expected.value)
        .values(
            status=CampaignStatus.SENDING.value,
            launched_at=now,
            updated_at=now,
            failure_reason=None,
        )
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise Conflict("Only a DRAFT campaign can be launched.", code="not_draft")

    connection = session.connection()
    when = literal(now, UTCDateTime)
    token = random_token_sql(connection.dialect.name).label("token")
    source = (
        eligible_contacts(org_id, campaign.audience)
        .with_only_columns(
            literal(org_id, MarketingSend.org_id.type),
            literal(campaign.id, MarketingSend.campaign_id.type),
            Contact.id,
            Contact.email,
            Contact.first_name,
            Contact.last_name,
            Contact.company_name,
            token,
            literal(SendStatus.QUEUED.value),
            literal(0),
            when,
            when,
        )
        .order_by(token)  # by its label, so each row's token is drawn once
    )
    columns = [
        "org_id", "campaign_id", "contact_id", "email", "first_name", "last_name",
        "company_name", "token", "status", "attempts", "next_attempt_at", "created_at",
    ]  # fmt: skip
    with bulk_insert_settings(connection):
        inserted = session.execute(
            insert(MarketingSend).from_select(columns, source),
            execution_options={"preserve_rowcount": True},
        )
    recipients = int(inserted.rowcount or 0)  # type: ignore[attr-defined]
    store_links(session, campaign)

    values: dict[str, Any] = {"recipients": recipients}
    if recipients == 0:
        values.update(status=CampaignStatus.SENT.value, completed_at=now)
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(campaign)
    details: dict[str, Any] = {"recipients": recipients}
    if scheduled and campaign.scheduled_at is not None:
        details["scheduledAt"] = campaign.scheduled_at.isoformat()
    audit.record(session, actor, "campaign.launched", target=target(campaign), details=details)
    return campaign


def target(campaign: Campaign) -> str:
    """How the audit log names a campaign."""
    return f"campaign {campaign.id} {campaign.name}"


# --- scheduled campaigns: launched by whichever worker finds them due first


def due_scheduled(session: Session, limit: int = 20) -> list[uuid.UUID]:
    """SCHEDULED campaigns whose time has come, earliest first. Read-only: every worker
    asks every second."""
    now = db_now(session)
    return list(
        session.scalars(
            select(Campaign.id)
            .where(Campaign.status == CampaignStatus.SCHEDULED.value, Campaign.scheduled_at <= now)
            .order_by(Campaign.scheduled_at)
            .limit(limit)
        )
    )


def launch_due(session: Session, campaign_id: uuid.UUID, grace_seconds: float) -> Campaign | None:
    """Launch a SCHEDULED campaign whose time has come (eligibility is decided now), or put
    it back to DRAFT with the reason when Herald finds it more than ``grace_seconds`` late.
    None when it is no longer SCHEDULED (another worker launched it, someone unscheduled or
    cancelled it). A failed launch leaves it FAILED with the reason, as a launch by hand does."""
    campaign = campaign_in_any_org(session, campaign_id)
    if campaign is None:
        return None
    session.refresh(campaign, with_for_update=True)
    if campaign.status != CampaignStatus.SCHEDULED.value or campaign.scheduled_at is None:
        return None
    actor = audit.system_actor(campaign.org_id, audit.WORKER)
    late = (db_now(session) - campaign.scheduled_at).total_seconds()
    if late <= grace_seconds:
        return launch_campaign(session, campaign.org_id, campaign.id, actor=actor, scheduled=True)
    when = campaign.scheduled_at.strftime("%Y-%m-%d %H:%M UTC")
    reason = (
        f"It missed its scheduled time ({when}): Herald was not running then and found it "
        f"{round(late / 60)} minutes late. Schedule it again, or launch it."
    )
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.SCHEDULED.value)
        .values(
            status=CampaignStatus.DRAFT.value,
            scheduled_at=None,
            failure_reason=reason,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(campaign)
    details = {"reason": reason}
    audit.record(
        session, actor, "campaign.schedule_missed", target=target(campaign), details=details
    )
    return campaign
