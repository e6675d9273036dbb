"""Webhook calls stored before they are answered, group-committed (herald.groupcommit): a
200 means the call's events are in the database, so a service never has to send them again
and a burst loses none. A worker ingests them afterwards (herald.bounces.webhooks.drain)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.bounces.webhooks.models import MailgunToken, WebhookDelivery
from herald.db import unit_of_work, utcnow
from herald.groupcommit import GroupCommit
from herald.runtime import Runtime

BATCH = 1000


@dataclass(frozen=True)
class Delivery:
    org_id: uuid.UUID
    source: str
    body: bytes
    mailgun_token: str | None = None
    signed_at: dt.datetime | None = None


class WebhookInbox:
    """``store`` answers True once the call is committed, False for a Mailgun token seen
    before (the call is then refused, and nothing of it is kept)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._group: GroupCommit[Delivery, bool] = GroupCommit(self._write, BATCH)

    async def store(self, delivery: Delivery) -> bool:
        return await self._group.submit(delivery)

    async def close(self) -> None:
        await self._group.close()

    def _write(self, deliveries: list[Delivery]) -> list[bool]:
        with unit_of_work(self.runtime.sessions) as session:
            accepted = _accept_tokens(session, deliveries)
            now = utcnow()
            rows = [
                {"org_id": d.org_id, "source": d.source, "body": d.body, "received_at": now}
                for d, ok in zip(deliveries, accepted, strict=True)
                if ok
            ]
            if rows:
                session.execute(insert(WebhookDelivery), rows)
        return accepted


def _accept_tokens(session: Session, deliveries: list[Delivery]) -> list[bool]:
    """Each delivery's token recorded as used, or False when it was used before (by an
    earlier call, or earlier in this batch)."""
    tokens = [d.mailgun_token for d in deliveries if d.mailgun_token]
    if not tokens:
        return [True] * len(deliveries)
    seen = set(session.scalars(select(MailgunToken.token).where(MailgunToken.token.in_(tokens))))
    accepted: list[bool] = []
    new: list[dict[str, object]] = []
    for d in deliveries:
        if d.mailgun_token is None:
            accepted.append(True)
        elif d.mailgun_token in seen:
            accepted.append(False)
        else:
            seen.add(d.mailgun_token)
            accepted.append(True)
            new.append({"token": d.mailgun_token, "signed_at": d.signed_at or utcnow()})
    if new:
        try:
            with session.begin_nested():
                session.execute(insert(MailgunToken), new)
        except IntegrityError:  # another process took one of them just now: one at a time
            return _accept_one_by_one(session, deliveries)
    return accepted


def _accept_one_by_one(session: Session, deliveries: list[Delivery]) -> list[bool]:
    accepted: list[bool] = []
    for d in deliveries:
        if d.mailgun_token is None:
            accepted.append(True)
            continue
        try:
            with session.begin_nested():
                session.add(MailgunToken(token=d.mailgun_token, signed_at=d.signed_at or utcnow()))
                session.flush()
            accepted.append(True)
        except IntegrityError:
            accepted.append(False)
    return accepted
