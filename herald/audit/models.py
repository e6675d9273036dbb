"""One row per audited action of an org: its actor, action, target and what changed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, OrgScoped, UTCDateTime, big_int_id, utcnow


class AuditEvent(OrgScoped, Base):
    __tablename__ = "audit_events"
    # the newest-first list walks this index; it also serves every lookup by org alone
    __table_args__ = (Index("ix_audit_events_org_at", "org_id", "at", "id"),)

    # an integer id keeps events of the same instant in the order they were written
    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    # not OrgScoped's separate org_id index: the (org_id, at, id) one covers it
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orgs.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the actor's name as it was (a user's email, or a system actor), kept if the user changes
    actor: Mapped[str] = mapped_column(String(320))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
