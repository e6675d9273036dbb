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

from sqlalchemy import bindparam, literal_column, select, update
from sqlalchemy.orm import Session

from herald.marketing.models import MarketingSend, SendStatus
from herald.marketing.queue import add_to_counters

S = MarketingSend
# Inlined, the partial index's own condition: SQLite uses ix_marketing_sends_contact_delivered
# only for a query naming it with the same constants.
_DELIVERED_OR_BOUNCED = S.status.in_([literal_column("'DELIVERED'"), literal_column("'BOUNCED'")])
_IN_FLIGHT = (SendStatus.QUEUED.value, SendStatus.SENDING.value)
MAX_ERROR = 2000


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


# Built once, run with parameters: a flood of bounces runs these many times a second.
_SEND = select(*_COLUMNS).where(
    S.id == bindparam("send_id", type_=S.id.type), S.org_id == bindparam("org_id")
)
_BOUNCE = (
    update(S)
    .where(S.id == bindparam("send_id", type_=S.id.type), S.status == bindparam("seen"))
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


def latest_delivered_send(
    session: Session, org_id: uuid.UUID, contact_id: uuid.UUID, email: str
) -> SendFacts | None:
    """The contact's latest DELIVERED or BOUNCED send to ``email`` (case-insensitively),
    through the partial index of delivered sends by contact."""
    rows = session.execute(
        select(*_COLUMNS)
        .where(S.contact_id == contact_id, _DELIVERED_OR_BOUNCED, S.org_id == org_id)
        .order_by(S.id.desc())
        .limit(20)
    ).all()
    wanted = email.lower()
    for row in rows:
        if row.email.lower() == wanted:
            return SendFacts(*row)
    return None


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
    error = reason[:MAX_ERROR] or f"Bounced ({kind})."
    status = send.status
    for _attempt in range(3):
        values = {"send_id": send.id, "seen": status, "bounce_type": kind, "at": at}
        values["error"] = error
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
                .where(S.id == send.id, S.status == status, S.bounce_type != "hard")
                .values(bounce_type="hard", error=error)
                .execution_options(synchronize_session=False)
            )
            return Bounced.HARDENED if hardened.rowcount else Bounced.UNCHANGED  # type: ignore[attr-defined]
        else:
            return Bounced.UNCHANGED
        status = session.scalar(select(S.status).where(S.id == send.id)) or ""
    return Bounced.UNCHANGED


def _update_send(session: Session, values: dict[str, object]) -> bool:
    """Conditional on the status seen; an in-flight send keeps its status."""
    return bool(session.connection().execute(_BOUNCE, values).rowcount)


def record_complaint(session: Session, send: SendFacts, at: dt.datetime) -> bool:
    """The send's complainedAt (its status stays) and its campaign's complaints; False when
    it was already counted."""
    result = session.execute(
        update(S)
        .where(S.id == send.id, S.complained_at.is_(None))
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
    """How many of the contact's campaigns in a row, ending with ``send``'s (which just
    bounced), bounced: ``send`` counts one, then each earlier delivered send to the same
    address, newest first, while it is BOUNCED. A delivery that did not bounce ends the run,
    and so does ``since`` (the contact's email status was last set then: a reset to OK
    starts the count again). At most ``limit``."""
    if send.contact_id is None or limit <= 1:
        return 1
    rows = session.execute(
        select(S.status, S.email, S.delivered_at)
        .where(S.contact_id == send.contact_id, _DELIVERED_OR_BOUNCED, S.id < send.id)
        .order_by(S.id.desc())
        .limit(limit * 4)  # other addresses the contact had are skipped, not counted
    ).all()
    run = 1
    for status, email, delivered_at in rows:
        if run >= limit:
            break
        if email.lower() != send.email.lower():
            continue
        if since is not None and (delivered_at is None or delivered_at < since):
            break
        if status != SendStatus.BOUNCED.value:
            break
        run += 1
    return run
