"""An org's relay as every worker on every machine shares it, through the database: the
permits its limits allow and the backoff after a throttling answer (one row per org,
``RelayBudget``, worked out by herald.marketing.budget), and the connection slots each
worker holds (``RelayConnection``, leased like sends, so a dead worker's come back).

Every function runs in the caller's unit of work and takes the database's ``now``
(herald.db.db_now). The org's row is locked while it changes (PostgreSQL ``FOR UPDATE``; on
SQLite the writer's ``BEGIN IMMEDIATE`` already excludes everyone else).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from herald.db import db_now
from herald.mailconfig.account import RelayLimits
from herald.marketing import budget
from herald.marketing.budget import UNLIMITED, BudgetState, Grant
from herald.marketing.models import RelayBudget, RelayConnection


def _insert_missing(session: Session, model: type[Any], values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, in each database's own spelling."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


def _locked_row(session: Session, org_id: uuid.UUID) -> RelayBudget:
    """The org's row (created on first use), locked until the transaction ends."""
    _insert_missing(
        session, RelayBudget, {"org_id": org_id, "minute_counts": {}, "backoff_seconds": 0.0}
    )
    stmt = (
        select(RelayBudget)
        .where(RelayBudget.org_id == org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _seconds(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _moment(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value is not None else None


def _state(row: RelayBudget) -> BudgetState:
    return BudgetState(
        next_slot=_seconds(row.next_slot_at),
        minutes={int(minute): n for minute, n in (row.minute_counts or {}).items()},
        backoff_until=_seconds(row.backoff_until),
        backoff_seconds=row.backoff_seconds or 0.0,
        backoff_reason=row.backoff_reason,
    )


def _store(row: RelayBudget, state: BudgetState, limits: RelayLimits, now: float) -> None:
    row.next_slot_at = _moment(state.next_slot)
    row.minute_counts = {str(minute): n for minute, n in state.minutes.items()}
    row.backoff_until = _moment(state.backoff_until)
    row.backoff_seconds = state.backoff_seconds
    row.backoff_reason = state.backoff_reason
    row.available_at = _moment(budget.available_at(state, limits, now))
    row.per_second, row.per_hour = limits.per_second, limits.per_hour


def take_grant(
    session: Session,
    org_id: uuid.UUID,
    limits: RelayLimits,
    wanted: int,
    now: dt.datetime,
    resting_until: dt.datetime | None,
) -> Grant:
    """Permits for up to ``wanted`` messages to the org's relay; ``UNLIMITED`` when the org
    has no rate limit and the relay is not backing off.

    Without a rate limit only the backoff counts, as the caller read it (unlocked, with
    the campaign's counters): a throttling answer committed meanwhile holds back the next
    chunk instead of this one."""
    if not limits.rated:
        return Grant(count=0) if resting_until is not None and now < resting_until else UNLIMITED
    row = _locked_row(session, org_id)
    state = _state(row)
    grant = budget.take(state, limits, now.timestamp(), wanted)
    _store(row, state, limits, now.timestamp())
    session.flush()
    return grant


def give_back(
    session: Session,
    org_id: uuid.UUID,
    limits: RelayLimits,
    grant: Grant,
    unused: int,
    now: dt.datetime,
) -> None:
    """Hour permits that no message used (see budget.give_back)."""
    if grant.minute is None or unused <= 0:
        return
    row = _locked_row(session, org_id)
    state = _state(row)
    budget.give_back(state, grant.minute, unused)
    _store(row, state, limits, now.timestamp())
    session.flush()


def note_throttle(
    session: Session, org_id: uuid.UUID, limits: RelayLimits, reason: str, now: dt.datetime
) -> dt.datetime:
    """The relay said "slow down": every worker holds off it until the returned time."""
    row = _locked_row(session, org_id)
    state = _state(row)
    until = budget.note_throttle(state, now.timestamp(), reason)
    _store(row, state, limits, now.timestamp())
    session.flush()
    moment = _moment(until)
    assert moment is not None
    return moment


@dataclass(frozen=True)
class RelayWait:
    """Why nothing goes to the org's relay right now, and until when."""

    until: dt.datetime
    reason: str


def current_wait(session: Session, org_id: uuid.UUID, now: dt.datetime) -> RelayWait | None:
    """The backoff a throttling answer started, while it lasts (for the campaign page)."""
    row = session.execute(
        select(RelayBudget.backoff_until, RelayBudget.backoff_reason).where(
            RelayBudget.org_id == org_id
        )
    ).one_or_none()
    if row is None or row.backoff_until is None or row.backoff_until <= now:
        return None
    return RelayWait(row.backoff_until, row.backoff_reason or "")


def backoff_left(session: Session, org_id: uuid.UUID) -> float:
    """Seconds the org's relay still rests (0: none), on the database's clock: one read
    of its row, unlocked, for workers checking before each transaction (rests.py)."""
    until = session.scalar(select(RelayBudget.backoff_until).where(RelayBudget.org_id == org_id))
    if until is None:
        return 0.0
    return max((until - db_now(session)).total_seconds(), 0.0)


# --- connection slots ---


def acquire_connections(
    session: Session,
    org_id: uuid.UUID,
    owner: str,
    wanted: int,
    limit: int,
    lease_seconds: float,
    now: dt.datetime,
) -> int:
    """How many connections ``owner`` may keep open to the org's relay (0 to ``wanted``):
    what the org's ``limit`` leaves after the other workers' unexpired slots."""
    _locked_row(session, org_id)  # one worker at a time counts the org's slots
    mine = (RelayConnection.org_id == org_id) & (RelayConnection.owner == owner)
    session.execute(
        delete(RelayConnection).where(
            RelayConnection.org_id == org_id, RelayConnection.expires_at <= now
        )
    )
    others = session.scalar(
        select(func.coalesce(func.sum(RelayConnection.slots), 0)).where(
            RelayConnection.org_id == org_id, RelayConnection.owner != owner
        )
    )
    granted = max(0, min(wanted, limit - int(others or 0)))
    if granted == 0:
        session.execute(delete(RelayConnection).where(mine))
        return 0
    until = now + dt.timedelta(seconds=lease_seconds)
    _insert_missing(
        session,
        RelayConnection,
        {"org_id": org_id, "owner": owner, "slots": granted, "expires_at": until},
    )
    session.execute(update(RelayConnection).where(mine).values(slots=granted, expires_at=until))
    return granted


def renew_connections(session: Session, owner: str, lease_seconds: float, now: dt.datetime) -> None:
    session.execute(
        update(RelayConnection)
        .where(RelayConnection.owner == owner)
        .values(expires_at=now + dt.timedelta(seconds=lease_seconds))
    )


def release_connections(session: Session, owner: str, org_id: uuid.UUID | None = None) -> None:
    """Give back the owner's slots (one org's, or all of them)."""
    stmt = delete(RelayConnection).where(RelayConnection.owner == owner)
    if org_id is not None:
        stmt = stmt.where(RelayConnection.org_id == org_id)
    session.execute(stmt)
