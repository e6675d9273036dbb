"""Ingests stored webhook calls (herald.bounces.webhooks.inbox) through herald.bounces.ingest,
the same path as a bounce by mail: each call's row goes in the transaction that records it,
so every call is ingested once, by one worker (rows another worker holds are skipped)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session

from herald.bounces.ingest import Incoming, ingest
from herald.bounces.models import Source
from herald.bounces.webhooks import mailgun, postmark, sendgrid, ses
from herald.bounces.webhooks import repository as webhook_calls
from herald.bounces.webhooks.events import Reading
from herald.bounces.webhooks.models import WebhookDelivery
from herald.db import db_now
from herald.log import get_logger
from herald.mail.sendref import SendRefKeys
from herald.mailconfig.bounceaddress import bounce_addresses, return_path_org
from herald.text import storable

log = get_logger("herald.webhooks")

BATCH = 200
# Older tokens are refused by their timestamp anyway (5 minutes), so they need not be kept.
TOKEN_KEPT = dt.timedelta(minutes=15)


def _ses(body: bytes) -> Reading:
    return ses.read(str(json.loads(body).get("Message", "")))


def _mailgun(body: bytes) -> Reading:
    event = json.loads(body).get("event-data")
    return mailgun.read(event if isinstance(event, dict) else {})


READERS: dict[str, Callable[[bytes], Reading]] = {
    Source.SES.value: _ses,
    Source.SENDGRID.value: sendgrid.read,
    Source.MAILGUN.value: _mailgun,
    Source.POSTMARK.value: postmark.read,
}


def drain_batch(session: Session, keys: SendRefKeys, limit: int = BATCH) -> int:
    """Ingest up to ``limit`` stored calls, oldest first; how many were taken."""
    rows = webhook_calls.take_waiting(session, limit)
    if not rows:
        return 0
    addresses = bounce_addresses(session)
    done: list[int] = []
    for row in rows:
        try:
            with session.begin_nested():
                ingest(session, keys, _incoming(row, addresses), org_id=row.org_id)
            done.append(row.id)
        # One call the ingest cannot take must not hold up the others: kept, with why.
        except Exception as exc:
            row.failed_at = db_now(session)
            row.error = storable(f"{type(exc).__name__}: {exc}")[:2000]
            log.error("webhooks.ingest_failed", delivery_id=row.id, error=type(exc).__name__)
    webhook_calls.forget(session, done)
    return len(rows)


def _incoming(row: WebhookDelivery, addresses: Mapping[str, uuid.UUID]) -> Incoming:
    reading = READERS[row.source](row.body)
    # The Return-Path names the send only when it is this org's bounce address (with a
    # tag); any other sender address says nothing, and its "+" part is no tag of ours.
    envelope_to = reading.envelope_from
    if return_path_org(addresses, envelope_to) != row.org_id:
        envelope_to = None
    return Incoming(
        source=Source(row.source),
        raw=row.body,
        envelope_to=envelope_to,
        events=reading.events,
        received_at=row.received_at,
    )


def forget_old_tokens(session: Session) -> None:
    webhook_calls.forget_tokens_before(session, db_now(session) - TOKEN_KEPT)
