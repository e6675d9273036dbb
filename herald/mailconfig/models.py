"""Per-org SMTP settings. The password is sealed with herald.secretbox, never returned."""

from __future__ import annotations

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin


class EmailConfig(IdMixin, OrgScoped, TimestampMixin, Base):
    __tablename__ = "email_configs"
    __table_args__ = (
        UniqueConstraint("org_id", name="uq_email_configs_org_id"),
        # The bounce receiver finds the org of an address here; one org per address.
        Index("uq_email_configs_bounce_address", "bounce_address", unique=True),
    )

    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(255), default="")
    password_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    security: Mapped[str] = mapped_column(String(16), default="starttls")
    default_from_name: Mapped[str] = mapped_column(String(200), default="")
    default_from_email: Mapped[str] = mapped_column(String(320), default="")
    # Bounces (herald.bounces): the envelope sender's base, lower-cased; None: no VERP.
    bounce_address: Mapped[str | None] = mapped_column(String(320), default=None)
    soft_bounce_limit: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
