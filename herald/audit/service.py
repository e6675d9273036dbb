"""Recording audit events (one call in the service that performs the action) and listing them.

An event is added to the caller's session and flushed, never committed here: it commits or
rolls back with the action it records.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from herald.audit.models import AuditEvent
from herald.audit.repository import AuditRepository, account_for_login
from herald.text import storable_problem

if TYPE_CHECKING:
    from herald.auth.deps import Principal
    from herald.orgs.models import User

CLI = "herald CLI"
WORKER = "herald worker"
DEV = "herald dev"

# column names whose values never go into details: only whether they changed
SECRET_NAME = re.compile(r"password|secret|token|key", re.IGNORECASE)
# bookkeeping columns that say nothing an ADMIN asks about
UNAUDITED_COLUMNS = frozenset({"id", "org_id", "created_at", "updated_at"})


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a user (named by their email as it was) or a system actor."""

    org_id: uuid.UUID
    name: str
    user_id: uuid.UUID | None = None


def actor(principal: Principal) -> Actor:
    """The logged-in caller of a route or page."""
    return Actor(org_id=principal.org_id, name=principal.email, user_id=principal.user_id)


def user_actor(user: User) -> Actor:
    """A user acting on their own account (login, MFA)."""
    return Actor(org_id=user.org_id, name=user.email, user_id=user.id)


def system_actor(org_id: uuid.UUID, name: str) -> Actor:
    """Herald itself acting on an org: ``CLI``, ``WORKER`` or ``DEV``."""
    return Actor(org_id=org_id, name=name)


def record(
    session: Session,
    who: Actor,
    action: str,
    *,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add one event to the action's transaction. ``details``: what changed, never a
    password, token, secret or message body."""
    session.add(
        AuditEvent(
            org_id=who.org_id,
            actor=who.name[:320],
            actor_user_id=who.user_id,
            action=action,
            target=target[:500],
            details=dict(details or {}),
        )
    )
    session.flush()


def failed_login(session: Session, email: str, reason: str, address: str) -> None:
    """A refused login to a known account, recorded in that account's org (an unknown
    email belongs to no org, so nothing is recorded). The caller keeps it although the
    login answers an error (``keep_changes``)."""
    if storable_problem(email):
        return
    user = account_for_login(session, email)
    if user is None:
        return
    who = Actor(org_id=user.org_id, name=user.email)
    details = {"reason": reason, "address": address}
    record(session, who, "auth.login_failed", target=f"user {user.email}", details=details)


def record_user_change(session: Session, who: Actor, before: Mapping[str, Any], user: User) -> None:
    """``user.role_changed``, ``user.deactivated`` or ``user.reactivated``, for what changed
    since ``before`` (a ``snapshot`` of the user)."""
    changed = changes(before, user)
    target = f"user {user.email}"
    if "role" in changed:
        record(session, who, "user.role_changed", target=target, details={"role": changed["role"]})
    if "isActive" in changed:
        action = "user.reactivated" if user.is_active else "user.deactivated"
        record(session, who, action, target=target)


def snapshot(row: object | None) -> dict[str, Any]:
    """A row's column values now, to compare with ``changes`` after an update; {} for none."""
    if row is None:
        return {}
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}


def changes(before: Mapping[str, Any], row: object) -> dict[str, Any]:
    """What changed since ``snapshot``, camelCase: ``{"host": {"from": .., "to": ..}}``;
    a secret column only as ``"changed"`` or ``"cleared"``, never its value."""
    changed: dict[str, Any] = {}
    for key, now in snapshot(row).items():
        was = before.get(key)
        if key in UNAUDITED_COLUMNS or was == now:
            continue
        name = _camel(key.removesuffix("_sealed"))
        if SECRET_NAME.search(key):
            changed[name] = "changed" if now else "cleared"
        else:
            changed[name] = {"from": _jsonable(was), "to": _jsonable(now)}
    return changed


def list_events(
    session: Session, org_id: uuid.UUID, page: int, page_size: int
) -> tuple[list[AuditEvent], int]:
    return AuditRepository(session, org_id).newest_first(page, page_size)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
