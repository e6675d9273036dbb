"""CRM contacts and the org's contact statuses."""

from __future__ import annotations

from sqlalchemy import Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin

DEFAULT_STATUSES = ("LEAD", "PROSPECT", "CUSTOMER", "INACTIVE")


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
