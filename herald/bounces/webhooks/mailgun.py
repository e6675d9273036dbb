"""Mailgun's webhooks: an HMAC-SHA256 of timestamp + token with the org's signing key,
a timestamp within 5 minutes, and a token never accepted twice (kept by the recorder);
``failed`` (permanent: hard, temporary: soft) and ``complained`` have effects."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from herald.bounces.ingest import Event
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import Reading, Unauthenticated, angle_id, joined, text

MAX_AGE_SECONDS = 300


@dataclass(frozen=True)
class Signed:
    """A verified call: its token (to be refused if seen again) and its event."""

    token: str
    signed_at: dt.datetime
    event: dict[str, Any]


def verify(signing_key: str | None, body: bytes, now: float | None = None) -> Signed:
    if not signing_key:
        raise Unauthenticated("no Mailgun signing key is set")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unauthenticated("not a Mailgun webhook (not JSON)") from None
    signature = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signature, dict):
        raise Unauthenticated("no Mailgun signature")
    timestamp, token = text(signature.get("timestamp")), text(signature.get("token"), 256)
    digest = text(signature.get("signature"), 256)
    if not timestamp.isdigit() or not token or not digest:
        raise Unauthenticated("incomplete Mailgun signature")
    mac = hmac.HMAC(signing_key.encode(), hashes.SHA256())
    mac.update(timestamp.encode() + token.encode())
    try:
        mac.verify(bytes.fromhex(digest))
    except (InvalidSignature, ValueError):
        raise Unauthenticated("Mailgun signature does not match") from None
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
        raise Unauthenticated("Mailgun timestamp is more than 5 minutes away")
    event = data.get("event-data")
    signed_at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    return Signed(token, signed_at, event if isinstance(event, dict) else {})


def read(event: dict[str, Any]) -> Reading:
    name = event.get("event")
    if name == "failed":
        kind = ReportType.HARD if event.get("severity") == "permanent" else ReportType.SOFT
    elif name == "complained":
        kind = ReportType.COMPLAINT
    else:
        return Reading()
    email = text(event.get("recipient"), 320)
    if not email:
        return Reading()
    status = _dict(event.get("delivery-status"))
    said = text(status.get("message")) or text(status.get("description"))
    reason = joined(text(status.get("code")), said) or text(event.get("reason")) or str(name)
    message_id = angle_id(_dict(_dict(event.get("message")).get("headers")).get("message-id"))
    sender = text(_dict(event.get("envelope")).get("sender"), 320) or None
    return Reading([Event(kind, email, reason, message_id)], sender)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
