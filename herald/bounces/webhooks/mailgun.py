"""Mailgun's webhooks: an HMAC-SHA256 of timestamp + token with the org's signing key,
a timestamp within 5 minutes, and a token never accepted twice (kept by the recorder);
``complained`` and a permanent ``failed`` have effects (hard or soft by its reason, else by
the server's answer); a temporary ``failed`` is Mailgun retrying: recorded, ignored."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from herald.bounces.ingest import Event, EventType
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import (
    Reading,
    Unauthenticated,
    angle_id,
    as_dict,
    bounce_type,
    joined,
    text,
)

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


# Why Mailgun gave up on a message for good, when not for what the server answered.
_PERMANENT: dict[str, EventType] = {
    "suppress-bounce": ReportType.HARD,  # the address bounced for good before (605)
    "suppress-complaint": ReportType.COMPLAINT,  # its person complained before (606)
    "suppress-unsubscribe": ReportType.IGNORED,  # its person unsubscribed (607)
    "old": ReportType.SOFT,  # expired after Mailgun's retries
    "espblock": ReportType.SOFT,  # the recipient's provider blocked Mailgun
}


def read(event: dict[str, Any]) -> Reading:
    name = event.get("event")
    email = text(event.get("recipient"), 320)
    if name not in ("failed", "complained") or not email:
        return Reading()
    status = as_dict(event.get("delivery-status"))
    said = text(status.get("message")) or text(status.get("description"))
    reason = joined(text(status.get("code")), said) or text(event.get("reason")) or str(name)
    if name == "complained":
        kind: EventType = ReportType.COMPLAINT
    elif event.get("severity") != "permanent":
        # a temporary failure: Mailgun tries again (a delay notice, not a bounce)
        kind, reason = ReportType.IGNORED, f"Mailgun will retry: {reason}"
    else:
        known = _PERMANENT.get(text(event.get("reason")))
        enhanced = text(status.get("enhanced-code"), 16) or None
        kind = known if known is not None else bounce_type(enhanced, reason)
    headers = as_dict(as_dict(event.get("message")).get("headers"))
    message_id = angle_id(headers.get("message-id"))
    sender = text(as_dict(event.get("envelope")).get("sender"), 320) or None
    return Reading([Event(kind, email, reason, message_id)], sender)
