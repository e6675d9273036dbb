"""The sends table as a work queue: claim a batch with a lease, mark sends in flight,
record outcomes with their counters, and recover what dead workers left behind.

A send moves QUEUED (claimable) -> QUEUED with a lease (claimed) -> SENDING (in an SMTP
transaction) -> DELIVERED | FAILED | UNKNOWN, or back to QUEUED for a retry; DELIVERED ->
BOUNCED when a bounce for it arrives (herald.marketing.feedback). Every function
here runs inside the caller's unit of work; SQLite callers begin it as a writer.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from herald.crm.models import Contact
from herald.db import UTCDateTime, db_now, lock_skip_locked, utcnow
from herald.marketing.audience import MAILABLE, NOT_MAILABLE_REASON
from herald.marketing.models import Campaign, CampaignStatus, MarketingSend, SendStatus

S = MarketingSend
# Inlined, not bound: SQLite uses a partial index only when the query names its condition
# with the same constant (status = 'QUEUED').
IS_QUEUED = S.status == literal_column("'QUEUED'")
IS_SENDING = S.status == literal_column("'SENDING'")
# The same test in a form no partial index matches, for statements naming their sends by id:
# they must go through the primary key, whatever the planner's (stale) statistics say.
IS_QUEUED_UNINDEXED = func.upper(S.status) == literal_column("'QUEUED'")
UNKNOWN_REASON = (
    "The worker stopped while this message was in its SMTP transaction, so it may have "
    "been delivered. It is not re-sent automatically; use Resend if it did not arrive."
)


# Built once, run with parameters: the sending path runs these once per chunk, and building
# a statement and computing its cache key cost more than SQLite takes to run it.
NOW = bindparam("now", type_=UTCDateTime())
IDS: BindParameter[int] = bindparam("ids", expanding=True)
OWNER = bindparam("owner", type_=S.lease_owner.type)
# Sends whose contact may no longer be mailed (opted out, deleted: no row) since the launch.
_BLOCKED = (
    select(S.id).outerjoin(Contact, Contact.id == S.contact_id).where(S.id.in_(IDS), ~MAILABLE)
)
# Only sends whose lease is still ours and still running: a worker that lost its lease
# (paused, cut off from the database) must not send what another one took.
_START = (
    update(S)
    .where(S.id.in_(IDS), S.lease_owner == OWNER, IS_QUEUED_UNINDEXED, S.lease_expires_at > NOW)
    .values(
        status=SendStatus.SENDING.value, first_attempt_at=func.coalesce(S.first_attempt_at, NOW)
    )
    .returning(S.id)
)
# A bounce can arrive before its delivery is recorded (the relay bounced at once): it set
# bounced_at (herald.marketing.feedback), and the send is then BOUNCED instead.
_NOT_BOUNCED = S.bounced_at.is_(None)
_DELIVERED = (
    update(S)
    .where(S.id.in_(IDS), S.lease_owner == OWNER)
    .values(
        status=case((_NOT_BOUNCED, SendStatus.DELIVERED.value), else_=SendStatus.BOUNCED.value),
        delivered_at=NOW,
        attempts=S.attempts + 1,
        error=case((_NOT_BOUNCED, None), else_=S.error),
        lease_owner=None,
        lease_expires_at=None,
    )
    .returning(S.id, S.status)
)


def _counters_statement() -> Update:
    """Move a campaign's counters, and mark it SENT once no send is pending."""
    delivered = Campaign.delivered + bindparam("delivered", type_=Integer())
    failed = Campaign.failed + bindparam("failed", type_=Integer())
    unknown = Campaign.unknown + bindparam("unknown", type_=Integer())
    # bounced is part of failed; complaints are of delivered sends (herald.bounces)
    bounced = Campaign.bounced + bindparam("bounced", type_=Integer())
    complaints = Campaign.complaints + bindparam("complaints", type_=Integer())
    # SET expressions read the row as it was, so "done" is computed from the new counts.
    done = and_(
        Campaign.status == CampaignStatus.SENDING.value,
        delivered + failed + unknown >= Campaign.recipients,
    )
    return (
        update(Campaign)
        .where(Campaign.id == bindparam("campaign_id", type_=Campaign.id.type))
        .values(
            delivered=delivered,
            failed=failed,
            unknown=unknown,
            bounced=bounced,
            complaints=complaints,
            updated_at=NOW,
            status=case((done, CampaignStatus.SENT.value), else_=Campaign.status),
            completed_at=case((done, NOW), else_=Campaign.completed_at),
            hold_reason=case((done, None), else_=Campaign.hold_reason),
        )
    )


_COUNTERS = _counters_statement()


@dataclass(frozen=True)
class ClaimedSend:
    id: int
    contact_id: uuid.UUID | None
    email: str
    first_name: str
    last_name: str
    company_name: str
    token: str
    attempts: int
    first_attempt_at: dt.datetime | None


@dataclass
class Batch:
    campaign_id: uuid.UUID
    org_id: uuid.UUID
    sends: list[ClaimedSend]


class Outcome(enum.Enum):
    """What one delivery attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"  # a transient answer or no connection: back to the queue, later
    FAILED = "failed"
    UNKNOWN = "unknown"  # may have been delivered: never re-sent automatically


@dataclass
class Outcomes:
    """What happened to the sends of one dispatch, to be recorded in one transaction."""

    delivered: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    retry: list[tuple[ClaimedSend, str]] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)

    def add(self, send: ClaimedSend, outcome: Outcome, detail: str) -> None:
        if outcome is Outcome.DELIVERED:
            self.delivered.append(send.id)
        elif outcome is Outcome.RETRY:
            self.retry.append((send, detail))
        elif outcome is Outcome.UNKNOWN:
            self.unknown.append((send.id, detail))
        else:
            self.failed.append((send.id, detail))


def _claimable(now: dt.datetime) -> list[ColumnElement[bool]]:
    return [
        IS_QUEUED,
        S.next_attempt_at <= now,
        or_(S.lease_expires_at.is_(None), S.lease_expires_at < now),
    ]


def _pending_campaigns(session: Session, now: dt.datetime) -> list[Row[uuid.UUID, uuid.UUID]]:
    """Campaigns with sends still to go and not held, first launched first (their counters
    move in the same transactions as their sends)."""
    return list(
        session.execute(
            select(Campaign.id, Campaign.org_id)
            .where(
                Campaign.delivered + Campaign.failed + Campaign.unknown < Campaign.recipients,
                or_(Campaign.held_until.is_(None), Campaign.held_until <= now),
            )
            .order_by(Campaign.launched_at, Campaign.id)
        ).all()
    )


def has_due_sends(session: Session) -> bool:
    """Whether a claim would find a send now. Read-only, so an idle worker can ask often
    without taking SQLite's writer lock."""
    now = db_now(session)
    for campaign in _pending_campaigns(session, now):
        due = select(S.id).where(S.campaign_id == campaign.id, *_claimable(now)).limit(1)
        if session.scalar(due) is not None:
            return True
    return False


def claim_batch(
    session: Session, owner: str, lease_seconds: float, size: int = 100
) -> Batch | None:
    """Lease up to ``size`` due sends of the first-launched campaign that has some.

    The campaigns with sends still to go are read from their counters (which move in the
    same transactions as the sends), then each one's due sends from a partial index of
    queued sends in (campaign, next_attempt_at, id) order, stopping at ``size``: a claim
    costs the same with 1,000 sends queued as with 1,000,000, and no range is left for
    stale planner statistics to misjudge into a sort of the whole queue.
    """
    now = db_now(session)
    for campaign in _pending_campaigns(session, now):
        rows = session.execute(
            lock_skip_locked(
                select(
                    S.id,
                    S.contact_id,
                    S.email,
                    S.first_name,
                    S.last_name,
                    S.company_name,
                    S.token,
                    S.attempts,
                    S.first_attempt_at,
                )
                # the order of ix_marketing_sends_queue_campaign, after its equality
                .where(S.campaign_id == campaign.id, *_claimable(now))
                .order_by(S.next_attempt_at, S.id)
                .limit(size),
                session,
            )
        ).all()
        if rows:
            break
    else:
        return None
    session.execute(
        update(S)
        .where(S.id.in_([r.id for r in rows]))
        .values(lease_owner=owner, lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return Batch(campaign.id, campaign.org_id, [ClaimedSend(*row) for row in rows])


def renew_leases(session: Session, owner: str, send_ids: list[int], lease_seconds: float) -> None:
    """Extend the leases of the sends this worker is working on (and only those)."""
    until = db_now(session) + dt.timedelta(seconds=lease_seconds)
    for start in range(0, len(send_ids), 500):
        session.execute(
            update(S)
            .where(S.id.in_(send_ids[start : start + 500]), S.lease_owner == owner)
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )


def start_dispatch(
    session: Session, owner: str, campaign_id: uuid.UUID, sends: list[ClaimedSend]
) -> tuple[list[ClaimedSend], Outcomes]:
    """Mark sends SENDING just before their SMTP transactions; this must commit first.

    A contact who may no longer be mailed (audience.MAILABLE: opted out, deleted) since
    the launch gets nothing: that send is FAILED with the reason instead.
    """
    connection = session.connection()
    blocked = {row[0] for row in connection.execute(_BLOCKED, {"ids": [s.id for s in sends]})}
    candidates = [s for s in sends if s.id not in blocked]
    marked: set[int] = set()
    if candidates:
        params = {"ids": [s.id for s in candidates], "owner": owner, "now": db_now(session)}
        marked = {row[0] for row in connection.execute(_START, params)}
    go = [s for s in candidates if s.id in marked]
    skipped = Outcomes(failed=[(i, NOT_MAILABLE_REASON) for i in blocked])
    return go, skipped


def retry_delay(attempts: int, base_seconds: float) -> float:
    """Exponential backoff with full jitter: base * 2^(n-1), scaled by 0.5 to 1.5."""
    return base_seconds * (2 ** max(attempts - 1, 0)) * (0.5 + random.random())  # noqa: S311


def record_outcomes(
    session: Session,
    owner: str,
    campaign_id: uuid.UUID,
    outcomes: Outcomes,
    retry_base_seconds: float,
    retry_window_seconds: float,
) -> None:
    """Write every outcome of a dispatch and move the campaign's counters with them.

    Only sends still leased to ``owner`` are touched: if this worker lost its lease (and a
    recovery marked the send UNKNOWN), the other record stands and nothing is counted twice.
    """
    now = db_now(session)
    counts: Counter[str] = Counter()
    mine = and_(S.lease_owner == owner)
    done = {"lease_owner": None, "lease_expires_at": None}

    if outcomes.delivered:
        params = {"ids": outcomes.delivered, "owner": owner, "now": now}
        for _id, status in session.connection().execute(_DELIVERED, params):
            if status == SendStatus.DELIVERED.value:
                counts[Outcome.DELIVERED.value] += 1
            else:  # bounced before its delivery was recorded
                counts.update(("failed", "bounced"))

    failed = list(outcomes.failed)
    for send, error in outcomes.retry:
        started = send.first_attempt_at or now
        delay = retry_delay(send.attempts + 1, retry_base_seconds)
        next_at = now + dt.timedelta(seconds=delay)
        if (next_at - started).total_seconds() > retry_window_seconds:
            failed.append((send.id, f"Deferred past the retry window; last answer: {error}"))
            continue
        session.execute(
            update(S)
            .where(S.id == send.id, mine)
            .values(
                status=SendStatus.QUEUED.value,
                attempts=S.attempts + 1,
                error=error,
                next_attempt_at=next_at,
                **done,
            )
            .execution_options(synchronize_session=False)
        )

    for outcome, rows in ((Outcome.FAILED, failed), (Outcome.UNKNOWN, outcomes.unknown)):
        for send_id, error in rows:
            result = session.execute(
                update(S)
                .where(S.id == send_id, mine)
                .values(
                    status=SendStatus[outcome.name].value,
                    attempts=S.attempts + 1,
                    error=error[:2000],
                    **done,
                )
                .returning(S.id)
                .execution_options(synchronize_session=False)
            )
            counts[outcome.value] += len(result.all())

    add_to_counters(session, campaign_id, counts)


def add_to_counters(session: Session, campaign_id: uuid.UUID, counts: Counter[str]) -> None:
    """Move a campaign's counters, and mark it SENT once no send is pending: one UPDATE, as
    it runs once per chunk on the sending path."""
    if not any(counts.values()):
        return
    session.connection().execute(
        _COUNTERS,
        {
            "campaign_id": campaign_id,
            "delivered": counts["delivered"],
            "failed": counts["failed"],
            "unknown": counts["unknown"],
            "bounced": counts["bounced"],
            "complaints": counts["complaints"],
            "now": utcnow(),
        },
    )


def release(session: Session, owner: str, send_ids: list[int]) -> None:
    """Give claimed sends back to the queue untouched (shutdown, or the campaign is held)."""
    if not send_ids:
        return
    session.execute(
        update(S)
        .where(S.id.in_(send_ids), S.lease_owner == owner, IS_QUEUED_UNINDEXED)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def hold_campaign(session: Session, campaign_id: uuid.UUID, reason: str, seconds: float) -> None:
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(
            hold_reason=reason[:2000], held_until=db_now(session) + dt.timedelta(seconds=seconds)
        )
        .execution_options(synchronize_session=False)
    )


def clear_hold(session: Session, campaign_id: uuid.UUID) -> None:
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.hold_reason.is_not(None))
        .values(hold_reason=None, held_until=None)
        .execution_options(synchronize_session=False)
    )


def recover_expired(session: Session) -> int:
    """Sends left SENDING by a worker whose lease ran out become UNKNOWN (never re-sent).

    Sends it had only claimed need nothing: an expired lease makes them claimable again.
    """
    now = db_now(session)
    result = session.execute(
        update(S)
        .where(IS_SENDING, S.lease_expires_at < now)
        .values(
            # a bounce that came back meanwhile proves it was delivered, then bounced
            status=case((_NOT_BOUNCED, SendStatus.UNKNOWN.value), else_=SendStatus.BOUNCED.value),
            error=case((_NOT_BOUNCED, UNKNOWN_REASON), else_=S.error),
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(S.campaign_id, S.status)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    per_campaign: dict[uuid.UUID, Counter[str]] = {}
    for campaign_id, status in rows:
        counts = per_campaign.setdefault(campaign_id, Counter())
        if status == SendStatus.UNKNOWN.value:
            counts["unknown"] += 1
        else:
            counts.update(("failed", "bounced"))
    for campaign_id, counts in per_campaign.items():
        add_to_counters(session, campaign_id, counts)
    return len(rows)
