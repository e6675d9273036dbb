"""What marketing lets other areas learn and change about its sends after delivery: finding
the send a bounce or complaint is about, marking it BOUNCED or complained, and the
campaign's counters moved with it (one UPDATE of the campaign row, never a count of sends).

Used by herald.bounces, a batch of reports at a time (a flood of bounces costs a few
statements per batch, not a few per bounce); every function runs in the caller's unit of
work.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
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
_SETTLED = (SendStatus.DELIVERED.value, SendStatus.UNKNOWN.value)
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
_SENDS = select(*_COLUMNS).where(S.id.in_(bindparam("ids", expanding=True)))
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


def sends_facts(
    session: Session, wanted: Collection[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], SendFacts]:
    """The sends named by (org, send id), in one query; another org's send is left out."""
    ids = sorted({send_id for _, send_id in wanted if 0 < send_id < 2**63})
    if not ids:
        return {}
    found = {}
    for row in session.connection().execute(_SENDS, {"ids": ids}):
        facts = SendFacts(*row)
        if (facts.org_id, facts.id) in wanted:
            found[facts.org_id, facts.id] = facts
    return found


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


@dataclass(frozen=True)
class Bounce:
    send: SendFacts
    hard: bool
    reason: str  # the diagnostic, kept as the send's error
    at: dt.datetime

    def values(self, seen: str, status: str) -> dict[str, object]:
        """The parameters of _BOUNCE: the send from ``seen`` to ``status``."""
        kind = "hard" if self.hard else "soft"
        return {
            "send_id": self.send.id,
            "seen": seen,
            "status": status,
            "bounce_type": kind,
            "at": self.at,
            "error": self.reason[:MAX_ERROR] or f"Bounced ({kind}).",
        }


def record_bounces(session: Session, bounces: Sequence[Bounce]) -> None:
    """``record_bounce`` for each (distinct sends): the DELIVERED and UNKNOWN ones, nearly
    all of them, in one UPDATE of many rows and one UPDATE of each campaign's counters; the
    others one by one, and all of them so should one have changed since it was read."""
    settled = [b for b in bounces if b.send.status in _SETTLED]
    if len(settled) > 1:
        savepoint = session.begin_nested()
        rows = [b.values(b.send.status, SendStatus.BOUNCED.value) for b in settled]
        if session.connection().execute(_BOUNCE, rows).rowcount == len(rows):
            savepoint.commit()
            counts: defaultdict[uuid.UUID, Counter[str]] = defaultdict(Counter)
            for b in settled:
                counts[b.send.campaign_id].update(
                    {b.send.status.lower(): -1, "failed": 1, "bounced": 1}
                )
            for campaign_id, moved in counts.items():
                add_to_counters(session, campaign_id, moved)
            bounces = [b for b in bounces if b.send.status not in _SETTLED]
        else:  # another process wrote one of them meanwhile (PostgreSQL): one at a time
            savepoint.rollback()
    for b in bounces:
        record_bounce(session, b)


def record_bounce(session: Session, bounce: Bounce) -> Bounced:
    """The send becomes BOUNCED (bounce type, time, the diagnostic as its error) and its
    campaign's delivered (or unknown) goes down while failed and bounced go up, in one
    UPDATE of the campaign row. Conditional on the status read, so a worker recording the
    same send meanwhile (PostgreSQL) makes this read again rather than count twice."""
    send = bounce.send
    status = send.status
    for _attempt in range(3):
        if status in _SETTLED:
            if _update_send(session, bounce.values(status, SendStatus.BOUNCED.value)):
                counts = Counter({status.lower(): -1, "failed": 1, "bounced": 1})
                add_to_counters(session, send.campaign_id, counts)
                return Bounced.BOUNCED
        elif status in _IN_FLIGHT:
            if _update_send(session, bounce.values(status, status)):
                return Bounced.PENDING
        elif status == SendStatus.BOUNCED.value:
            if not bounce.hard:
                return Bounced.UNCHANGED
            hardened = session.execute(
                update(S)
                .where(S.id == send.id, S.status == status, S.bounce_type != "hard")
                .values(bounce_type="hard", error=bounce.values(status, status)["error"])
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
