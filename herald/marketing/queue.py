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
from herald.db import UTCDateTime, db_now, lock_skip_locked
from herald.mailconfig.models import EmailConfig
from herald.marketing.audience import MAILABLE, NOT_MAILABLE_REASON
from herald.marketing.counters import (
    NEVER,
    CampaignState,
    add_to_counters,
    move_counters,
    read_state,
    refused_login_reason,
    relay_failure_reason,
)
from herald.marketing.models import (
    CLAIMABLE,
    Campaign,
    CampaignStatus,
    MarketingSend,
    RelayBudget,
    SendStatus,
)

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
    THROTTLED = "throttled"  # the relay wants fewer messages: back once its backoff ends
    UNSENT = "unsent"  # never started (its permit ran out, or the login was refused)


class Cause(enum.Enum):
    """Whose the answer was, for the run of failures that pauses a campaign."""

    RECIPIENT = "recipient"  # an answer about the recipient: the relay works, the run ends
    RELAY = "relay"  # no answer about the recipient (connection refused or lost, timeout...)
    NONE = "none"


@dataclass
class Streak:
    """How one dispatch moves its campaign's run of relay failures, in completion order."""

    reset: bool = False  # a recipient's answer came: the run restarts from ``add``
    add: int = 0
    reason: str | None = None  # the last relay failure, for the pause reason

    def note(self, cause: Cause, detail: str) -> None:
        if cause is Cause.RECIPIENT:
            self.reset, self.add = True, 0
        elif cause is Cause.RELAY:
            self.add += 1
            self.reason = detail


@dataclass
class Outcomes:
    """What happened to the sends of one dispatch, to be recorded in one transaction."""

    delivered: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    retry: list[tuple[ClaimedSend, str]] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)
    throttled: list[tuple[ClaimedSend, str]] = field(default_factory=list)
    unsent: list[ClaimedSend] = field(default_factory=list)
    streak: Streak = field(default_factory=Streak)
    refused_login: str | None = None  # the relay refused our credentials: pause
    late: int = 0  # of the unsent, those whose permit ran out (given back to the hour)

    def add(
        self, send: ClaimedSend, outcome: Outcome, detail: str, cause: Cause = Cause.NONE
    ) -> None:
        self.streak.note(cause, detail)
        if outcome is Outcome.DELIVERED:
            self.delivered.append(send.id)
        elif outcome is Outcome.RETRY:
            self.retry.append((send, detail))
        elif outcome is Outcome.UNKNOWN:
            self.unknown.append((send.id, detail))
        elif outcome is Outcome.THROTTLED:
            self.throttled.append((send, detail))
        elif outcome is Outcome.UNSENT:
            self.unsent.append(send)
        else:
            self.failed.append((send.id, detail))

    @property
    def throttle_reply(self) -> str | None:
        return self.throttled[-1][1] if self.throttled else None

    @property
    def requeued(self) -> list[int]:
        """Sends this dispatch put back in the queue (still leased to its worker)."""
        return [s.id for s, _ in self.retry + self.throttled] + [s.id for s in self.unsent]


# What a claim may take: queued, due, and not leased (or its lease ran out).
_CLAIMABLE = (
    IS_QUEUED,
    S.next_attempt_at <= NOW,
    or_(S.lease_expires_at.is_(None), S.lease_expires_at < NOW),
)
# The org's relay has a permit to give (or its limits changed since it said when).
_RELAY_HAS_SOMETHING = or_(
    RelayBudget.available_at.is_(None),
    RelayBudget.available_at <= NOW,
    and_(
        or_(
            RelayBudget.per_second.is_distinct_from(EmailConfig.max_per_second),
            RelayBudget.per_hour.is_distinct_from(EmailConfig.max_per_hour),
        ),
        ~and_(RelayBudget.backoff_until.is_not(None), RelayBudget.backoff_until > NOW),
    ),
)
_PENDING = (
    select(Campaign.id, Campaign.org_id)
    .outerjoin(RelayBudget, RelayBudget.org_id == Campaign.org_id)
    .outerjoin(EmailConfig, EmailConfig.org_id == Campaign.org_id)
    .where(
        Campaign.status.in_(CLAIMABLE),
        Campaign.delivered + Campaign.failed + Campaign.unknown + Campaign.cancelled
        < Campaign.recipients,
        or_(Campaign.held_until.is_(None), Campaign.held_until <= NOW),
        _RELAY_HAS_SOMETHING,
    )
    .order_by(Campaign.launched_at, Campaign.id)
)
CAMPAIGN = bindparam("campaign", type_=S.campaign_id.type)
_ANY_DUE = select(S.id).where(S.campaign_id == CAMPAIGN, *_CLAIMABLE).limit(1)
_DUE = (
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
    .where(S.campaign_id == CAMPAIGN, *_CLAIMABLE)
    .order_by(S.next_attempt_at, S.id)
    .limit(bindparam("size"))
)
_LEASE = (
    update(S)
    .where(S.id.in_(IDS))
    .values(lease_owner=OWNER, lease_expires_at=bindparam("until", type_=UTCDateTime()))
)


def _pending_campaigns(
    session: Session, now: dt.datetime, skip_orgs: frozenset[uuid.UUID] = frozenset()
) -> list[Row[uuid.UUID, uuid.UUID]]:
    """Campaigns being sent (or SENT, with sends resent by hand) with sends still to go,
    not held, whose org's relay has something to give now (see relay.py), first launched
    first. Their counters move in the same transactions as their sends. ``skip_orgs``: orgs
    the caller cannot serve now (it holds no connection slot to their relay)."""
    rows = session.connection().execute(_PENDING, {"now": now}).all()
    return [row for row in rows if row.org_id not in skip_orgs]


def has_due_sends(session: Session, skip_orgs: frozenset[uuid.UUID] = frozenset()) -> bool:
    """Whether a claim would find a send now. Read-only, so an idle worker can ask often
    without taking SQLite's writer lock."""
    now = db_now(session)
    connection = session.connection()
    for campaign in _pending_campaigns(session, now, skip_orgs):
        params = {"campaign": campaign.id, "now": now}
        if connection.execute(_ANY_DUE, params).first() is not None:
            return True
    return False


def claim_batch(
    session: Session,
    owner: str,
    lease_seconds: float,
    size: int = 100,
    skip_orgs: frozenset[uuid.UUID] = frozenset(),
) -> Batch | None:
    """Lease up to ``size`` due sends of the first-launched campaign that has some.

    The campaigns with sends still to go are read from their counters (which move in the
    same transactions as the sends), then each one's due sends from a partial index of
    queued sends in (campaign, next_attempt_at, id) order, stopping at ``size``: a claim
    costs the same with 1,000 sends queued as with 1,000,000, and no range is left for
    stale planner statistics to misjudge into a sort of the whole queue.
    """
    now = db_now(session)
    connection = session.connection()
    due = lock_skip_locked(_DUE, session)
    for campaign in _pending_campaigns(session, now, skip_orgs):
        params = {"campaign": campaign.id, "now": now, "size": size}
        rows = connection.execute(due, params).all()
        if rows:
            break
    else:
        return None
    until = now + dt.timedelta(seconds=lease_seconds)
    connection.execute(_LEASE, {"ids": [r.id for r in rows], "owner": owner, "until": until})
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


def _requeue(
    session: Session, owner: str, send: ClaimedSend, error: str | None, next_at: dt.datetime
) -> None:
    """Back to the queue, due at ``next_at``, still leased to ``owner`` until it lets go."""
    values: dict[str, object] = {"status": SendStatus.QUEUED.value, "next_attempt_at": next_at}
    if error is not None:  # an attempt was made: it counts, and its answer is kept
        values.update(attempts=S.attempts + 1, error=error, lease_owner=None, lease_expires_at=None)
    session.execute(
        update(S)
        .where(S.id == send.id, S.lease_owner == owner)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def record_outcomes(
    session: Session,
    owner: str,
    campaign_id: uuid.UUID,
    outcomes: Outcomes,
    retry_base_seconds: float,
    retry_window_seconds: float,
    autopause_failures: int = NEVER,
) -> CampaignState:
    """Write every outcome of a dispatch and move the campaign's counters with them; answer
    the campaign's status, its row now locked until the transaction ends.

    Only sends still leased to ``owner`` are touched: if this worker lost its lease (and a
    recovery marked the send UNKNOWN), the other record stands and nothing is counted twice.
    Sends never started (UNSENT) go back to the queue still leased, for the batch to try
    again; those put back in a campaign cancelled meanwhile become CANCELLED.
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
    retries = [(s, e, retry_delay(s.attempts + 1, retry_base_seconds)) for s, e in outcomes.retry]
    # Throttled: due again once the relay's backoff ends (set by the caller, see defer_until).
    retries += [(s, e, 0.0) for s, e in outcomes.throttled]
    for send, error, delay in retries:
        started = send.first_attempt_at or now
        next_at = now + dt.timedelta(seconds=delay)
        if (next_at - started).total_seconds() > retry_window_seconds:
            failed.append((send.id, f"Deferred past the retry window; last answer: {error}"))
            continue
        _requeue(session, owner, send, error, next_at)
    for send in outcomes.unsent:
        _requeue(session, owner, send, None, now)

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

    streak = outcomes.streak
    if not (any(counts.values()) or outcomes.requeued or streak.add or streak.reset):
        return read_state(session, campaign_id)  # a batch's first chunk: nothing to move
    state = move_counters(
        session,
        campaign_id,
        counts,
        streak_reset=streak.reset,
        streak_add=streak.add,
        streak_reason=relay_failure_reason(streak.reason, autopause_failures),
        pause_reason=refused_login_reason(outcomes.refused_login)
        if outcomes.refused_login
        else None,
        autopause=autopause_failures,
    )
    if state.status == CampaignStatus.CANCELLED.value and outcomes.requeued:
        cancelled = cancel_queued(session, campaign_id, ids=outcomes.requeued)
        state = move_counters(session, campaign_id, Counter(cancelled=cancelled))
    return state


def defer_until(session: Session, send_ids: list[int], until: dt.datetime) -> None:
    """Sends this worker just put back in the queue wait until ``until`` (the relay's
    backoff) before anyone claims them again."""
    if send_ids:
        session.execute(
            update(S)
            .where(S.id.in_(send_ids), IS_QUEUED_UNINDEXED, S.next_attempt_at < until)
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )


def cancel_queued(session: Session, campaign_id: uuid.UUID, ids: list[int] | None = None) -> int:
    """The campaign's QUEUED sends (claimed or not; only ``ids`` when given) become
    CANCELLED, never to be sent; how many. Sends in flight are left to complete."""
    stmt = update(S).where(S.campaign_id == campaign_id)
    if ids is not None:
        stmt = stmt.where(S.id.in_(ids), IS_QUEUED_UNINDEXED)
    else:
        stmt = stmt.where(IS_QUEUED)
    result = session.execute(
        stmt.values(
            status=SendStatus.CANCELLED.value, lease_owner=None, lease_expires_at=None
        ).execution_options(synchronize_session=False),
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
