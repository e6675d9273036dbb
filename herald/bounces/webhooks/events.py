"""What a mail service's webhook tells Herald, once its call is authenticated."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Unauthenticated(Exception):
    """The call is not proven to come from the service with this org's key: 401, and
    nothing of it is recorded. The reason is logged, never answered."""


class Kind(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    IGNORED = "ignored"  # a report about a message that is neither (an auto-reply, say)


@dataclass(frozen=True)
class ProviderEvent:
    """One bounce or complaint as the service classified it.

    ``message_id``: the original message's Message-ID when the service reports it;
    ``envelope_sender``: the Return-Path the message was sent with (it carries the send's
    TAG when a bounce address is set); ``raw``: the event as received, kept as its report.
    """

    kind: Kind
    email: str
    reason: str
    raw: bytes
    message_id: str | None = None
    envelope_sender: str | None = None


def text(value: object, limit: int = 2000) -> str:
    """A payload value as bounded text ("" for anything that is not a string or number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return str(value)[:limit]


def angle_id(value: object) -> str | None:
    """A Message-ID in its usual ``<id>`` form, or None."""
    found = text(value, 998).strip()
    if not found:
        return None
    return found if found.startswith("<") else f"<{found}>"
