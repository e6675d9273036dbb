"""Per-org mail settings: the SMTP relay and its limits, the bounce mailbox and the mail
services' webhook keys. Secrets are sealed with herald.secretbox, never returned."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin, UTCDateTime
from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS


def new_webhook_key() -> str:
    """The secret path segment of an org's webhook URLs: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


class EmailConfig(IdMixin, OrgScoped, TimestampMixin, Base):
    __tablename__ = "email_configs"
    __table_args__ = (
        UniqueConstraint("org_id", name="uq_email_configs_org_id"),
        # The bounce receiver finds the org of an address here; one org per address.
        Index("uq_email_configs_bounce_address", "bounce_address", unique=True),
        Index("ix_email_configs_webhook_key", "webhook_key", unique=True),
    )

    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(255), default="")
    password_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    security: Mapped[str] = mapped_column(String(16), default="starttls")
    default_from_name: Mapped[str] = mapped_column(String(200), default="")
    default_from_email: Mapped[str] = mapped_column(String(320), default="")

    # The relay's limits (issue #16), held by all workers together; None: no limit
    max_per_second: Mapped[int | None] = mapped_column(Integer, default=None)
    max_per_hour: Mapped[int | None] = mapped_column(Integer, default=None)
    max_connections: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_MAX_CONNECTIONS, server_default=str(DEFAULT_MAX_CONNECTIONS)
    )

    # Bounces (herald.bounces): the envelope sender's base, lower-cased; None: no VERP.
    bounce_address: Mapped[str | None] = mapped_column(String(320), default=None)
    soft_bounce_limit: Mapped[int] = mapped_column(Integer, default=3, server_default="3")

    # -- mail services' webhooks (issue #15) ---------------------------------------------
    # Finds the org of POST /webhooks/{provider}/{webhook_key}; regenerating it retires the
    # old URLs. Unique, so a key names one org.
    webhook_key: Mapped[str | None] = mapped_column(String(64), default=new_webhook_key)
    sendgrid_verification_key: Mapped[str] = mapped_column(Text, default="")  # a public key
    mailgun_signing_key_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    # Herald's own HTTP basic credentials for Postmark, shown in Settings to paste there.
    postmark_password_sealed: Mapped[str | None] = mapped_column(Text, default=None)

    # -- the bounce mailbox (IMAP); no host: none -----------------------------------------
    bounce_mailbox_host: Mapped[str] = mapped_column(String(255), default="")
    bounce_mailbox_port: Mapped[int] = mapped_column(Integer, default=993)
    bounce_mailbox_username: Mapped[str] = mapped_column(String(255), default="")
    bounce_mailbox_password_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    bounce_mailbox_security: Mapped[str] = mapped_column(String(16), default="tls")
    bounce_mailbox_folder: Mapped[str] = mapped_column(String(255), default="INBOX")


class BounceMailboxPoll(Base):
    """When an org's bounce mailbox is next due, which worker polls it now (a lease, so that
    one worker at a time does, across processes and machines), and how the last poll went."""

    __tablename__ = "bounce_mailbox_polls"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    next_poll_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # where the last poll stopped reading: messages it left are never read again, while the
    # folder's UIDVALIDITY stays the same
    uid_validity: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # messages recognised and moved to Herald/Processed, in the last poll and in all
    processed_last: Mapped[int] = mapped_column(Integer, default=0)
    processed_total: Mapped[int] = mapped_column(Integer, default=0)
