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

from herald.bounces.ingest import Event
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import Reading, Unauthenticated, angle_id, joined, text

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# dropped because the address reported spam before: a complaint, not a bounce
_SPAM_DROP = "spam reporting address"


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


def _kind(item: dict[str, object]) -> ReportType | None:
    event = item.get("event")
    if event == "spamreport":
        return ReportType.COMPLAINT
    if event == "bounce":
        # type "blocked" is SendGrid's soft bounce; "bounce" (or none) its hard one
        return ReportType.SOFT if item.get("type") == "blocked" else ReportType.HARD
    if event == "dropped":
        if text(item.get("reason")).lower() == _SPAM_DROP:
            return ReportType.COMPLAINT
        return ReportType.HARD
    return None
