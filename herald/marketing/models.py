"""Campaigns and their sends. The sends table is also the work queue of the workers."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    and_,
    text,
    true,
)
from sqlalchemy.ext.hybrid import hybrid_property
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

    # Engagement (issue #17): without track_opens no pixel, without track_clicks links as
    # written. Counted per send: opens = human_opens + machine_opens (a send with a human
    # open or click is human); clicks = sends with a human click, machine_clicks = sends
    # whose clicks were all machine ones.
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    human_opens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_opens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unsubscribes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def open_rate(self) -> float:
        return self.opens / self.delivered if self.delivered else 0.0

    @property
    def human_open_rate(self) -> float:
        return self.human_opens / self.delivered if self.delivered else 0.0

    @property
    def click_rate(self) -> float:
        return self.clicks / self.delivered if self.delivered else 0.0

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

    # Engagement (herald.marketing.engagement): opened_at and clicked_at are the first open
    # and click of any class; the *_human_at columns the first human ones still standing
    # (a trap link or a burst can turn hits machine afterwards). Only a class and a reason
    # are kept, never a client's address or agent. None of these is indexed, so that
    # recording a hit stays an update in place.
    open_human_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    click_human_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    trapped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    machine_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # per tracked link ("n": count), how many of the send's clicks on it are a person's: kept
    # with the send, so that writing a click never counts the send's whole history
    human_link_hits: Mapped[dict[str, int] | None] = mapped_column(JSON, default=None)

    @hybrid_property
    def machine(self) -> bool:
        """The send's only opens or clicks were machine ones (a click implies an open)."""
        engaged = self.opened_at is not None
        return engaged and self.open_human_at is None and self.click_human_at is None

    @machine.inplace.expression
    @classmethod
    def _machine_expression(cls) -> ColumnElement[bool]:
        return and_(
            cls.opened_at.is_not(None), cls.open_human_at.is_(None), cls.click_human_at.is_(None)
        )


class MarketingLink(Base):
    """A tracked link of a launched campaign, in body order from 1, ``url`` as written
    (placeholders unmerged). Its counters move with the click rows they count."""

    __tablename__ = "marketing_links"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    url: Mapped[str] = mapped_column(Text)
    clicks: Mapped[int] = mapped_column(Integer, default=0)  # human hits
    unique_clicks: Mapped[int] = mapped_column(Integer, default=0)  # sends with a human hit
    machine_clicks: Mapped[int] = mapped_column(Integer, default=0)  # machine hits


class MarketingClick(Base):
    """One hit on a tracked link (link 0: the hidden trap link): when, and its class and
    reason; nothing about the client. Like sends, no foreign keys: rows are written in
    batches by the hit recorder and read by send."""

    __tablename__ = "marketing_clicks"
    __table_args__ = (Index("ix_marketing_clicks_send", "send_id", "machine", "link", "at"),)

    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    send_id: Mapped[int] = mapped_column(big_int_id())
    link: Mapped[int] = mapped_column(Integer)
    # seconds since the epoch, as the classification rules compare them (thousands a second)
    at: Mapped[float] = mapped_column(Double)
    machine: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32), default=None)


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
