"""Postmark's webhooks: HTTP basic credentials (Herald's, shown in Settings); Bounce records
by their Type, and SpamComplaint records, have effects."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from herald.bounces.webhooks.events import Kind, ProviderEvent, Unauthenticated, text
from herald.mailconfig.inbound import POSTMARK_USERNAME

# Postmark's bounce types (its "Bounce types" reference), by what they mean here.
_HARD = frozenset({"HardBounce", "BadEmailAddress", "AddressChange"})
_SOFT = frozenset(
    {"SoftBounce", "Transient", "DnsError", "Blocked", "SpamNotification", "DMARCPolicy"}
)
_COMPLAINT = frozenset({"SpamComplaint"})


def verify(password: str | None, authorization: str) -> None:
    """Compared in constant time: a wrong user or password is indistinguishable."""
    scheme, _, encoded = authorization.partition(" ")
    if password is None or scheme.lower() != "basic":
        raise Unauthenticated("no Postmark basic credentials")
    try:
        user, _, given = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Unauthenticated("malformed basic credentials") from None
    user_ok = hmac.compare_digest(user.encode(), POSTMARK_USERNAME.encode())
    if not (hmac.compare_digest(given.encode(), password.encode()) and user_ok):
        raise Unauthenticated("wrong Postmark credentials")


def events(body: bytes) -> list[ProviderEvent]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(data, dict):
        return []
    record = data.get("RecordType")
    if record == "SpamComplaint":
        kind: Kind | None = Kind.COMPLAINT
    elif record == "Bounce":
        kind = _bounce_kind(text(data.get("Type")))
    else:
        return []
    email = text(data.get("Email"), 320)
    if kind is None or not email:
        return []
    reason = text(data.get("Details")) or text(data.get("Description")) or text(data.get("Type"))
    return [ProviderEvent(kind=kind, email=email, reason=reason, raw=body)]


def _bounce_kind(bounce_type: str) -> Kind:
    if bounce_type in _HARD:
        return Kind.HARD
    if bounce_type in _SOFT:
        return Kind.SOFT
    if bounce_type in _COMPLAINT:
        return Kind.COMPLAINT
    # auto-replies, subscribe/unsubscribe requests, challenge-response, Postmark's own
    # errors: a report about the message, recorded as ignored
    return Kind.IGNORED
