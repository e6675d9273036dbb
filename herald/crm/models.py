"""CRM contacts and the org's contact statuses."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin, UTCDateTime

DEFAULT_STATUSES = ("LEAD", "PROSPECT", "CUSTOMER", "INACTIVE")


class EmailStatus(enum.StrEnum):
    """Whether the contact's address may be mailed: set by Herald (bounces, complaints),
    never by an import; an ADMIN may set it back to OK."""

    OK = "OK"
    BOUNCED = "BOUNCED"
    COMPLAINED = "COMPLAINED"


class ContactStatus(IdMixin, OrgScoped, Base):
    __tablename__ = "contact_statuses"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_contact_statuses_org_name"),)

    name: Mapped[str] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Contact(IdMixin, OrgScoped, TimestampMixin, Base):
    """A person in the CRM. ``email_key`` is the lower-cased email: unique per org."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("org_id", "email_key", name="uq_contacts_org_email_key"),
        Index("ix_contacts_org_created", "org_id", "created_at", "id"),
        Index("ix_contacts_org_status", "org_id", "status"),
    )

    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_key: Mapped[str | None] = mapped_column(String(320), default=None)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    company_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(50), default="LEAD")
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    email_status: Mapped[str] = mapped_column(
        String(16), default=EmailStatus.OK.value, server_default=EmailStatus.OK.value
    )
    email_status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    email_status_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
