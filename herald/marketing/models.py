"""Campaigns and their sends. The sends table is also the work queue of the workers."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
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
    SCHEDULED = "SCHEDULED"
    SENDING = "SENDING"
    PAUSED = "PAUSED"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


# Campaigns whose queued sends workers take: SENT ones too, for the sends resent by hand.
CLAIMABLE = (CampaignStatus.SENDING.value, CampaignStatus.SENT.value)


class SendStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"  # in an SMTP transaction: may be delivered if its worker dies now
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    CANCELLED = "CANCELLED"  # its campaign was cancelled before it was sent: never sent
    BOUNCED = "BOUNCED"  # delivered, then a bounce for it arrived (herald.bounces)


class Campaign(IdMixin, OrgScoped, TimestampMixin, Base):
    """A one-off email to an audience. Counters are kept with the sends, never counted."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_org_created", "org_id", "created_at", "id"),
        # the workers' look for scheduled campaigns that are due
        Index("ix_campaigns_status_scheduled", "status", "scheduled_at"),
    )

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
    cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bounces and complaints (herald.bounces): a bounce moves a send from delivered to
    # failed and counts it in bounced; a complaint leaves the send DELIVERED.
    bounced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    complaints: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Set by a worker that cannot reach the org's SMTP server: sending waits (nobody is
    # failed) until held_until and then tries again by itself, the reason shown meanwhile.
    # (A refused login, or a run of such failures, pauses the campaign instead.)
    hold_reason: Mapped[str | None] = mapped_column(Text, default=None)
    held_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    # Sending control (issue #16): when a SCHEDULED campaign is launched; when and why it
    # was PAUSED (by a person, or by itself: refused credentials, a run of failures)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    pause_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Sends in a row that failed for a reason not their recipient's (the relay's): at
    # HERALD_AUTOPAUSE_FAILURES the campaign pauses itself. Any answer about a recipient
    # starts the count again.
    failure_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def open_rate(self) -> float:
        return self.opens / self.delivered if self.delivered else 0.0

    @property
    def pending(self) -> int:
        done = self.delivered + self.failed + self.unknown + self.cancelled
        return max(self.recipients - done, 0)


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


# --- the relay's shared budget (issue #16): one row per org, kept by herald.marketing.relay


class RelayBudget(Base):
    """An org's relay: the permits its limits allow (see herald.marketing.budget), the
    backoff a throttling answer started, and when a claim next gets anything."""

    __tablename__ = "relay_budgets"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    next_slot_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # {minute index (epoch minutes): permits granted in it}, the minutes of the rolling hour
    minute_counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    backoff_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    backoff_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    backoff_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Claims skip the org's campaigns until then (None: nothing to wait for), unless the
    # org's limits are no longer these, which it was worked out with
    available_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    per_second: Mapped[int | None] = mapped_column(Integer, default=None)
    per_hour: Mapped[int | None] = mapped_column(Integer, default=None)


class RelayConnection(Base):
    """Connection slots a worker holds to its org's relay, leased like sends: a worker that
    dies gives them back when the lease runs out."""

    __tablename__ = "relay_connections"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
