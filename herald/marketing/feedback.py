"""What marketing lets other areas learn and change about its sends after delivery: finding
the send a bounce or complaint is about, marking it BOUNCED or complained, and the
campaign's counters moved with it (one UPDATE of the campaign row, never a count of sends).

Used by herald.bounces; every function runs in the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, func, literal_column, select, update
from sqlalchemy.orm import Session

from herald.marketing.models import MarketingSend, SendStatus
from herald.marketing.queue import add_to_counters
from herald.text import MAX_REASON

S = MarketingSend
# Inlined, the partial index's own condition: SQLite uses ix_marketing_sends_address_delivered
# only for a query naming it with the same constants.
_DELIVERED_OR_BOUNCED = S.status.in_([literal_column("'DELIVERED'"), literal_column("'BOUNCED'")])
_IN_FLIGHT = (SendStatus.QUEUED.value, SendStatus.SENDING.value)


@dataclass(frozen=True)
class SendFacts:
    id: int
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    contact_id: uuid.UUID | None
    email: str
    status: str
    bounce_type: str | None
    delivered_at: dt.datetime | None


_COLUMNS = (
    S.id,
    S.org_id,
    S.campaign_id,
    S.contact_id,
    S.email,
    S.status,
    S.bounce_type,
    S.delivered_at,
)


_SEND = select(*_COLUMNS).where(
    S.id == bindparam("send_id", type_=S.id.type), S.org_id == bindparam("org_id")
)
_BOUNCE = (
    update(S)
    .where(
        S.id == bindparam("send_id", type_=S.id.type),
        S.org_id == bindparam("org"),
        S.status == bindparam("seen"),
    )
    .values(
        status=bindparam("status"),
        bounce_type=bindparam("bounce_type"),
        bounced_at=bindparam("at", type_=S.bounced_at.type),
        error=bindparam("error"),
    )
)


def send_facts(session: Session, org_id: uuid.UUID, send_id: int) -> SendFacts | None:
    """The org's send with this id (another org's is None)."""
    if not 0 < send_id < 2**63:
        return None
    row = session.connection().execute(_SEND, {"send_id": send_id, "org_id": org_id}).one_or_none()
    return SendFacts(*row) if row else None


def _delivered_to(org_id: uuid.UUID, email: str) -> tuple[ColumnElement[bool], ...]:
    """The org's DELIVERED or BOUNCED sends to ``email`` (case-insensitively), through the
    partial index of delivered sends by address."""
    return (S.org_id == org_id, func.lower(S.email) == email.lower(), _DELIVERED_OR_BOUNCED)


def latest_delivered_send(session: Session, org_id: uuid.UUID, email: str) -> SendFacts | None:
    """The org's latest DELIVERED or BOUNCED send to ``email``, whoever's contact it was
    (the contact may have another address now, or be deleted)."""
    row = session.execute(
        select(*_COLUMNS).where(*_delivered_to(org_id, email)).order_by(S.id.desc()).limit(1)
    ).one_or_none()
    return SendFacts(*row) if row else None


class Bounced(enum.Enum):
    """What recording a bounce did to its send."""

    BOUNCED = "bounced"  # DELIVERED or UNKNOWN -> BOUNCED, counters moved
    PENDING = "pending"  # still in flight: BOUNCED once the worker records its delivery
    HARDENED = "hardened"  # already BOUNCED soft, now hard
    UNCHANGED = "unchanged"  # already BOUNCED, or FAILED / never delivered


def record_bounce(
    session: Session, send: SendFacts, *, hard: bool, reason: str, at: dt.datetime
) -> Bounced:
    """The send becomes BOUNCED (bounce type, time, the diagnostic as its error) and its
    campaign's delivered (or unknown) goes down while failed and bounced go up, in one
    UPDATE of the campaign row. Conditional on the status read, so a worker recording the
    same send meanwhile (PostgreSQL) makes this read again rather than count twice."""
    kind = "hard" if hard else "soft"
    error = reason[:MAX_REASON] or f"Bounced ({kind})."
    status = send.status
    for _attempt in range(3):
        values = {"send_id": send.id, "org": send.org_id, "seen": status, "at": at}
        values.update(bounce_type=kind, error=error)
        if status in (SendStatus.DELIVERED.value, SendStatus.UNKNOWN.value):
            if _update_send(session, {**values, "status": SendStatus.BOUNCED.value}):
                counts = Counter({status.lower(): -1, "failed": 1, "bounced": 1})
                add_to_counters(session, send.campaign_id, counts)
                return Bounced.BOUNCED
        elif status in _IN_FLIGHT:
            if _update_send(session, {**values, "status": status}):
                return Bounced.PENDING
        elif status == SendStatus.BOUNCED.value:
            if not hard:
                return Bounced.UNCHANGED
            hardened = session.execute(
                update(S)
                .where(*_this(send), S.status == status, S.bounce_type != "hard")
                .values(bounce_type="hard", error=error)
                .execution_options(synchronize_session=False)
            )
            return Bounced.HARDENED if hardened.rowcount else Bounced.UNCHANGED  # type: ignore[attr-defined]
        else:
            return Bounced.UNCHANGED
        status = session.scalar(select(S.status).where(*_this(send))) or ""
    return Bounced.UNCHANGED


def _this(send: SendFacts) -> tuple[ColumnElement[bool], ...]:
    return (S.id == send.id, S.org_id == send.org_id)


def _update_send(session: Session, values: dict[str, object]) -> bool:
    """Conditional on the status seen; an in-flight send keeps its status."""
    return bool(session.connection().execute(_BOUNCE, values).rowcount)


def record_complaint(session: Session, send: SendFacts, at: dt.datetime) -> bool:
    """The send's complainedAt (its status stays) and its campaign's complaints; False when
    it was already counted."""
    result = session.execute(
        update(S)
        .where(*_this(send), S.complained_at.is_(None))
        .values(complained_at=at)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    add_to_counters(session, send.campaign_id, Counter(complaints=1))
    return True


def bounced_campaigns_in_a_row(
    session: Session, send: SendFacts, *, since: dt.datetime | None, limit: int
) -> int:
    """How many campaigns in a row bounced at ``send``'s address (``send`` just did):
    counted back from the org's newest delivered send to it, as a bounce may arrive after a
    later campaign's. A delivery that did not bounce ends the run, and so does ``since``
    (the contact's email status was last set then: a reset to OK starts the count again;
    the send that just bounced counts whenever it was delivered). At most ``limit``."""
    rows = session.execute(
        select(S.id, S.status, S.delivered_at)
        .where(*_delivered_to(send.org_id, send.email))
        .order_by(S.id.desc())
        .limit(limit)
    ).all()
    newest = [(row.id, row.status, row.delivered_at) for row in rows]
    if all(send_id != send.id for send_id, _, _ in newest):  # in flight: BOUNCED once recorded
        newest = sorted([*newest, (send.id, SendStatus.BOUNCED.value, None)], reverse=True)
    run = 0
    for send_id, status, delivered_at in newest[:limit]:
        if status != SendStatus.BOUNCED.value:
            break
        if send_id != send.id and since is not None and (not delivered_at or delivered_at < since):
            break
        run += 1
    return run
