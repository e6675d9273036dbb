"""Orgs (tenants), their licence features, and their users."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, IdMixin, TimestampMixin, UTCDateTime


class Role(enum.StrEnum):
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    USER = "USER"


KNOWN_FEATURES = frozenset({"marketing"})


class Org(IdMixin, TimestampMixin, Base):
    __tablename__ = "orgs"

    name: Mapped[str] = mapped_column(String(200))
    features: Mapped[list[str]] = mapped_column(JSON, default=list)

    def has_feature(self, feature: str) -> bool:
        return feature in (self.features or [])


class User(IdMixin, TimestampMixin, Base):
    """A person who logs in. Emails are unique across Herald, stored lower-cased."""

    __tablename__ = "users"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    mfa_secret: Mapped[str | None] = mapped_column(Text, default=None)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_last_step: Mapped[int | None] = mapped_column(Integer, default=None)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # In every access token (claim ``sev``); revoking the user's sessions increments it.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
