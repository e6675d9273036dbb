"""SendGrid's signed event webhook: an ECDSA (P-256, SHA-256) signature over the timestamp
header followed by the raw body, checked with the org's verification key; a JSON array of
events, of which bounce, dropped and spamreport have effects."""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from herald.bounces.ingest import Event, EventType
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import (
    Reading,
    Unauthenticated,
    angle_id,
    bounce_type,
    joined,
    text,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def verify(
    key: ec.EllipticCurvePublicKey | None, signature: str, timestamp: str, body: bytes
) -> None:
    if key is None:
        raise Unauthenticated("no SendGrid verification key is set")
    try:
        der = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated("SendGrid signature is not base64") from None
    try:
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Unauthenticated("SendGrid signature does not match") from None


def read(body: bytes) -> Reading:
    """The events with effects in a batch (the body is a JSON array)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Reading()
    events: list[Event] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        kind = _kind(item)
        email = text(item.get("email"), 320)
        if kind is None or not email:
            continue
        status = text(item.get("status"), 16) or None
        reason = joined(status or "", text(item.get("reason"))) or text(item.get("event"))
        events.append(Event(kind, email, reason, angle_id(item.get("smtp-id")), status))
    return Reading(events)


# Why SendGrid dropped a message without sending it (its Event Webhook reference).
_DROPPED: dict[str, EventType] = {
    "bounced address": ReportType.HARD,  # it bounced for good before
    "invalid": ReportType.HARD,  # not a valid address
    "spam reporting address": ReportType.COMPLAINT,  # its person reported spam before
    "spam content": ReportType.SOFT,  # the message was judged spam, not the address
    # nothing about the address: the person unsubscribed, or the account or the call
    "unsubscribed address": ReportType.IGNORED,
    "recipient list over package quota": ReportType.IGNORED,
    "invalid smtpapi header": ReportType.IGNORED,
}


def _kind(item: dict[str, object]) -> EventType | None:
    event = item.get("event")
    if event == "spamreport":
        return ReportType.COMPLAINT
    reason = text(item.get("reason"))
    if event == "bounce":
        if item.get("type") == "blocked":  # SendGrid's soft bounce: refused for now
            return ReportType.SOFT
        return bounce_type(text(item.get("status")), reason)
    if event == "dropped":
        known = _DROPPED.get(reason.strip().lower().partition(" (")[0])
        return known if known is not None else bounce_type(None, reason)
    return None
