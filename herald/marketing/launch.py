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

from sqlalchemy import ColumnElement, String, func, insert, literal, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.crm.models import Contact
from herald.db import UTCDateTime, utcnow
from herald.errors import Conflict
from herald.mailconfig.service import sending_defaults
from herald.marketing.audience import eligible_contacts
from herald.marketing.links import store_links
from herald.marketing.models import Campaign, CampaignStatus, MarketingSend, SendStatus
from herald.marketing.repository import CampaignRepository


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


def _fail(session: Session, campaign: Campaign, reason: str, code: str) -> LaunchFailed:
    taken = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.DRAFT.value)
        .values(status=CampaignStatus.FAILED.value, failure_reason=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return LaunchFailed("Only a DRAFT campaign can be launched.", code="not_draft")
    session.refresh(campaign)
    return LaunchFailed(reason, code=code, details={"status": CampaignStatus.FAILED.value})


def launch_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str | uuid.UUID, *, actor: audit.Actor
) -> Campaign:
    """DRAFT -> SENDING with one QUEUED send per eligible contact; 409 unless DRAFT.

    Two launches at once: the conditional UPDATE lets exactly one of them win.
    """
    campaign = CampaignRepository(session, org_id).get_for_update(campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise Conflict("Only a DRAFT campaign can be launched.", code="not_draft")
    defaults = sending_defaults(session, org_id)
    if defaults is None:
        raise _fail(
            session,
            campaign,
            "SMTP is not configured: set it up under Settings → Email configuration.",
            "smtp_not_configured",
        )
    if not (campaign.from_email or defaults.from_email):
        raise _fail(
            session,
            campaign,
            "No sender address: give the campaign a From email or set the default one "
            "under Settings → Email configuration.",
            "sender_missing",
        )

    now = utcnow()
    taken = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.DRAFT.value)
        .values(status=CampaignStatus.SENDING.value, launched_at=now, updated_at=now)
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
    audit.record(
        session,
        actor,
        "campaign.launched",
        target=f"campaign {campaign.id} {campaign.name}",
        details={"recipients": recipients},
    )
    return campaign
