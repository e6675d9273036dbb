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

from herald.bounces.webhooks.events import Kind, ProviderEvent, Unauthenticated, angle_id, text

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


def events(body: bytes) -> list[ProviderEvent]:
    """The events with effects, each with its own JSON as its report."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    found: list[ProviderEvent] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        kind = _kind(item)
        email = text(item.get("email"), 320)
        if kind is None or not email:
            continue
        reason = " ".join(p for p in (text(item.get("status")), text(item.get("reason"))) if p)
        found.append(
            ProviderEvent(
                kind=kind,
                email=email,
                reason=reason or text(item.get("event")),
                raw=json.dumps(item, separators=(",", ":"), sort_keys=True).encode(),
                message_id=angle_id(item.get("smtp-id")),
            )
        )
    return found


def _kind(item: dict[str, object]) -> Kind | None:
    event = item.get("event")
    if event == "spamreport":
        return Kind.COMPLAINT
    if event == "bounce":
        # type "blocked" is SendGrid's soft bounce; "bounce" (or none) its hard one
        return Kind.SOFT if item.get("type") == "blocked" else Kind.HARD
    if event == "dropped":
        if text(item.get("reason")).lower() == _SPAM_DROP:
            return Kind.COMPLAINT
        return Kind.HARD
    return None
