"""What a mail service's webhook tells Herald, once its call is authenticated: the events
of herald.bounces.ingest, as the service classified them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from herald.bounces.ingest import Event, EventType
from herald.bounces.models import ReportType
from herald.mail.classify import is_hard, status_code


class Unauthenticated(Exception):
    """The call is not proven to come from the service with this org's key: 401, and
    nothing of it is recorded. The reason is logged, never answered."""


@dataclass(frozen=True)
class Reading:
    """A call's bounce and complaint events (none: nothing to record), and the Return-Path
    its message was sent with when the service says (it carries the send's tag)."""

    events: list[Event] = field(default_factory=list)
    envelope_from: str | None = None


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


def joined(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def bounce_type(status: str | None, reason: str) -> EventType:
    """Hard or soft by the contract's rules (herald.mail.classify): the enhanced status code
    when it is specific, else the server's words, as for a bounce by mail."""
    code = status_code(status or "") or status_code(reason)
    return ReportType.HARD if is_hard(code, reason) else ReportType.SOFT


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
