"""What Herald keeps of bounce and complaint reports: each report as received (its raw
bytes, up to 256 KiB) and one row per recipient it speaks of, as the bounce list shows it."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, UTCDateTime, big_int_id, utcnow

RAW_KEPT_BYTES = 256 * 1024


class ReportType(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    IGNORED = "ignored"  # delay notices, auto-replies, repeats, anything unrecognised
    UNMATCHED = "unmatched"  # a bounce or complaint about no send Herald can find


class Source(enum.StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    SES = "ses"
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    POSTMARK = "postmark"
    API = "api"


class RawReport(Base):
    """A report as received: the mail message, or a webhook's or the API's body."""

    __tablename__ = "bounce_raw_reports"
    # The same bytes twice are one report: found by their digest within the org.
    __table_args__ = (UniqueConstraint("org_id", "sha256", name="uq_bounce_raw_reports_sha256"),)

    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orgs.id", ondelete="CASCADE"))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    # the SMTP envelope recipient (or Delivered-To): the return path the report came back to
    envelope_to: Mapped[str | None] = mapped_column(String(320), default=None)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)  # the whole report's size; ``content`` may be cut
    content: Mapped[bytes] = mapped_column(LargeBinary)


class BounceReport(Base):
    """One recipient of a report, classified and matched: what ``GET /bounces`` lists."""

    __tablename__ = "bounce_reports"
    __table_args__ = (
        # newest first, for the whole org or one type
        Index("ix_bounce_reports_org_received", "org_id", "received_at", "id"),
        Index("ix_bounce_reports_org_type_received", "org_id", "type", "received_at", "id"),
        # the same report (original message or send, recipient and type) counts once
        Index(
            "uq_bounce_reports_event_key",
            "org_id",
            "event_key",
            unique=True,
            postgresql_where=text("event_key IS NOT NULL"),
            sqlite_where=text("event_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orgs.id", ondelete="CASCADE"))
    raw_id: Mapped[int] = mapped_column(
        big_int_id(), ForeignKey("bounce_raw_reports.id", ondelete="CASCADE"), index=True
    )
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(320), default="")
    # what it matched; no foreign keys, as for the sends themselves (see MarketingSend)
    send_id: Mapped[int | None] = mapped_column(big_int_id(), default=None, index=True)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    # how: "tag", "message_id" or "address"
    matched_by: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    status_code: Mapped[str | None] = mapped_column(String(16), default=None)  # e.g. 5.1.1
    original_message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    # sha256 of (org, the send or original Message-ID, recipient, type) for the rows that
    # counted; None for repeats and for what nothing identifies
    event_key: Mapped[str | None] = mapped_column(String(64), default=None)
