"""Postmark's webhooks: HTTP basic credentials (Herald's, shown in Settings); Bounce records
by their Type, and SpamComplaint records, have effects."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from herald.bounces.ingest import Event
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import Reading, Unauthenticated, text
from herald.mailconfig.inbound import POSTMARK_USERNAME

# Postmark's bounce types (its Bounce API reference), by what they mean here. Transient
# is "Message delayed": Postmark still tries, so it is ignored like a delay notice.
_HARD = frozenset({"HardBounce", "BadEmailAddress", "AddressChange"})
_SOFT = frozenset({"SoftBounce", "DnsError", "Blocked", "SpamNotification", "DMARCPolicy"})
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


def read(body: bytes) -> Reading:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Reading()
    if not isinstance(data, dict):
        return Reading()
    record = data.get("RecordType")
    if record == "SpamComplaint":
        kind = ReportType.COMPLAINT
    elif record == "Bounce":
        kind = _bounce_kind(text(data.get("Type")))
    else:
        return Reading()
    email = text(data.get("Email"), 320)
    if not email:
        return Reading()
    reason = text(data.get("Details")) or text(data.get("Description")) or text(data.get("Type"))
    return Reading([Event(kind, email, reason)])


def _bounce_kind(bounce_type: str) -> ReportType:
    if bounce_type in _HARD:
        return ReportType.HARD
    if bounce_type in _SOFT:
        return ReportType.SOFT
    if bounce_type in _COMPLAINT:
        return ReportType.COMPLAINT
    # delays, auto-replies, subscribe/unsubscribe requests, challenge-response, Postmark's
    # own errors: a report about the message, recorded as ignored
    return ReportType.IGNORED
