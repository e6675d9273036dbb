"""What the webhooks keep: each authenticated call with events, stored before it is
answered and ingested afterwards by a worker; and Mailgun's tokens, so none is accepted twice."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from herald.db import Base, UTCDateTime, big_int_id, utcnow


class WebhookDelivery(Base):
    """A call waiting to be ingested (its row goes in the ingest's transaction). One that
    the ingest failed on is kept with ``failed_at`` and its error, and not tried again."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(big_int_id(), primary_key=True, autoincrement=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orgs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class MailgunToken(Base):
    """A token Mailgun signed; kept past the 5 minutes its timestamp is accepted for."""

    __tablename__ = "mailgun_tokens"

    token: Mapped[str] = mapped_column(String(256), primary_key=True)
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
