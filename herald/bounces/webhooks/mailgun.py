"""Mailgun's webhooks: an HMAC-SHA256 of timestamp + token with the org's signing key,
a timestamp within 5 minutes, and a token never accepted twice (kept by the recorder);
``failed`` (permanent: hard, temporary: soft) and ``complained`` have effects."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from herald.bounces.webhooks.events import Kind, ProviderEvent, Unauthenticated, angle_id, text

MAX_AGE_SECONDS = 300


@dataclass(frozen=True)
class Signed:
    """A verified call: its token (to be refused if seen again) and its event."""

    token: str
    timestamp: int
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
    return Signed(token, int(timestamp), event if isinstance(event, dict) else {})


def events(event: dict[str, Any]) -> list[ProviderEvent]:
    name = event.get("event")
    if name == "failed":
        kind = Kind.HARD if event.get("severity") == "permanent" else Kind.SOFT
    elif name == "complained":
        kind = Kind.COMPLAINT
    else:
        return []
    email = text(event.get("recipient"), 320)
    if not email:
        return []
    status = event.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    reason = (
        " ".join(
            p
            for p in (
                text(status.get("code")),
                text(status.get("message")) or text(status.get("description")),
            )
            if p
        )
        or text(event.get("reason"))
        or str(name)
    )
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    envelope = event.get("envelope")
    return [
        ProviderEvent(
            kind=kind,
            email=email,
            reason=reason,
            raw=json.dumps(event, separators=(",", ":"), sort_keys=True).encode(),
            message_id=angle_id(headers.get("message-id")) if isinstance(headers, dict) else None,
            envelope_sender=(
                text(envelope.get("sender"), 320) or None if isinstance(envelope, dict) else None
            ),
        )
    ]
