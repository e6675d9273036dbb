"""Campaigns and their sends. The sends table is also the work queue of the workers."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin, UTCDateTime, big_int_id, utcnow


class CampaignStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class SendStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"  # in an SMTP transaction: may be delivered if its worker dies now
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    BOUNCED = "BOUNCED"  # delivered, then a bounce for it arrived (herald.bounces)


class Campaign(IdMixin, OrgScoped, TimestampMixin, Base):
    """A one-off email to an audience. Counters are kept with the sends, never counted."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_org_created", "org_id", "created_at", "id"),)

    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_email: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(998))
    html_body: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=lambda: {"type": "ALL"})
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)

    recipients: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    # Bounces and complaints (herald.bounces): a bounce moves a send from delivered to
    # failed and counts it in bounced; a complaint leaves the send DELIVERED.
    bounced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    complaints: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Set by a worker that cannot reach or log in to the org's SMTP server: sending pauses
    # (nobody is failed) until held_until, and the reason is shown to the operator.
    hold_reason: Mapped[str | None] = mapped_column(Text, default=None)
    held_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def open_rate(self) -> float:
        return self.opens / self.delivered if self.delivered else 0.0

    @property
    def pending(self) -> int:
        return max(self.recipients - self.delivered - self.failed - self.unknown, 0)


class MarketingSend(OrgScoped, Base):
    """One recipient of one campaign. The recipient's fields are copied at launch.

    Queue columns: a QUEUED send whose lease is empty or expired and whose
    ``next_attempt_at`` has come is claimable.
    """

    __tablename__ = "marketing_sends"
    __table_args__ = (
        Index("ix_marketing_sends_campaign", "campaign_id", "id"),
        # The email log's pages by status walk this index alone (id is in it for PostgreSQL;
        # SQLite keeps the rowid in every index anyway).
        Index("ix_marketing_sends_campaign_status", "campaign_id", "status", "id"),
        # A claim takes one campaign's due sends in this order (see queue.claim_batch).
        Index(
            "ix_marketing_sends_queue_campaign",
            "campaign_id",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'QUEUED'"),
            sqlite_where=text("status = 'QUEUED'"),
        ),
        # The org's delivered sends to an address, newest last: matching a bounce by its
        # address (whoever's contact it was) and counting soft bounces over consecutive
        # campaigns. Partial, so a launch (all QUEUED) writes nothing to it; a send enters
        # it when delivered.
        Index(
            "ix_marketing_sends_address_delivered",
            "org_id",
            text("lower(email)"),
            "id",
            postgresql_where=text("status IN ('DELIVERED', 'BOUNCED')"),
            sqlite_where=text("status IN ('DELIVERED', 'BOUNCED')"),
        ),
        Index(
            "ix_marketing_sends_inflight",
            "lease_expires_at",
            postgresql_where=text("status = 'SENDING'"),
            sqlite_where=text("status = 'SENDING'"),
        ),
    )

    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    # No foreign keys on sends: each one costs every one of a launch's million inserts (a
    # trigger looking up, and on PostgreSQL locking, the parent row), and on PostgreSQL every
    # status change too. What they did is done explicitly instead:
    # - org_id: a send goes with its campaign, and every query names the campaign or the
    #   send's id, so it needs no index either;
    # - campaign_id: only a DRAFT campaign can be deleted, and a DRAFT has no sends;
    # - contact_id: deleting a contact leaves its id on its sends, and the email log shows
    #   None for it (SendRepository.without_deleted_contacts). Nothing looks sends up by
    #   contact, so no index either: its random keys cost a launch as much as the token's.
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    company_name: Mapped[str] = mapped_column(String(200), default="")
    token: Mapped[str] = mapped_column(String(64), unique=True)

    status: Mapped[str] = mapped_column(String(16), default=SendStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    # Bounces and complaints (herald.bounces). A bounce that arrives while the send is still
    # in flight (the relay bounced before the worker recorded the delivery) sets these
    # first; recording the delivery then makes the send BOUNCED (see queue.py).
    bounce_type: Mapped[str | None] = mapped_column(String(8), default=None)  # hard | soft
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    complained_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
