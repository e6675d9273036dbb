"""Per-org SMTP settings. The password is sealed with herald.secretbox, never returned."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, OrgScoped, TimestampMixin
from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS


class EmailConfig(IdMixin, OrgScoped, TimestampMixin, Base):
    __tablename__ = "email_configs"
    __table_args__ = (UniqueConstraint("org_id", name="uq_email_configs_org_id"),)

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
