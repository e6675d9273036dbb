"""A campaign's counters and status as its sends' outcomes move them: one UPDATE per chunk
that moves the counters and the run of relay failures, marks the campaign SENT or PAUSED,
and, answering its status under the row's lock, is what a chunk's transaction meets a
pause or a cancel on. The held campaign (the relay could not be reached) is here too."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Integer,
    Text,
    Update,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from herald.db import UTCDateTime, db_now, utcnow
from herald.marketing.models import CLAIMABLE, Campaign, CampaignStatus, RelayBudget

NEVER = 2**31 - 1  # an autopause limit no run reaches
NOW = bindparam("now", type_=UTCDateTime())
# the org's relay's backoff (relay.py), read with the campaign
_RESTING = (
    select(RelayBudget.backoff_until).where(RelayBudget.org_id == Campaign.org_id).scalar_subquery()
)


@dataclass(frozen=True)
class CampaignState:
    """A campaign's status as a chunk's transaction left it (its row locked till commit)."""

    status: str
    paused_now: bool = False  # this transaction paused it (refused login, run of failures)
    pause_reason: str | None = None
    relay_resting_until: dt.datetime | None = None  # its relay's backoff (relay.py)

    @property
    def claimable(self) -> bool:
        return self.status in CLAIMABLE


def _counters_statement() -> Update:
    """Move a campaign's counters and its run of relay failures; mark it SENT once no send
    is pending, or PAUSED when the relay refused our login or the run reached the limit.

    It is also the lock a chunk takes on its campaign before marking sends in flight: it
    answers the campaign's status, so a pause or a cancel and the next chunk never both win."""
    delivered = Campaign.delivered + bindparam("delivered", type_=Integer())
    failed = Campaign.failed + bindparam("failed", type_=Integer())
    unknown = Campaign.unknown + bindparam("unknown", type_=Integer())
    cancelled = Campaign.cancelled + bindparam("cancelled", type_=Integer())
    # bounced is part of failed; complaints are of delivered sends (herald.bounces)
    bounced = Campaign.bounced + bindparam("bounced", type_=Integer())
    complaints = Campaign.complaints + bindparam("complaints", type_=Integer())
    added = bindparam("streak_add", type_=Integer())
    streak = case(
        (bindparam("streak_reset", type_=Boolean()), added),
        else_=Campaign.failure_streak + added,
    )
    pause_reason = bindparam("pause_reason", type_=Text())
    # SET expressions read the row as it was, so "done" is computed from the new counts.
    done = and_(
        Campaign.status.in_((CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value)),
        delivered + failed + unknown + cancelled >= Campaign.recipients,
    )
    pause = and_(
        Campaign.status == CampaignStatus.SENDING.value,
        ~done,
        or_(pause_reason.is_not(None), streak >= bindparam("autopause", type_=Integer())),
    )
    reason = func.coalesce(pause_reason, bindparam("streak_reason", type_=Text()))
    return (
        update(Campaign)
        .where(Campaign.id == bindparam("campaign_id", type_=Campaign.id.type))
        .values(
            delivered=delivered,
            failed=failed,
            unknown=unknown,
            cancelled=cancelled,
            bounced=bounced,
            complaints=complaints,
            failure_streak=streak,
            updated_at=NOW,
            status=case(
                (done, CampaignStatus.SENT.value),
                (pause, CampaignStatus.PAUSED.value),
                else_=Campaign.status,
            ),
            completed_at=case((done, NOW), else_=Campaign.completed_at),
            hold_reason=case((done, None), else_=Campaign.hold_reason),
            paused_at=case((pause, NOW), else_=Campaign.paused_at),
            pause_reason=case((pause, reason), else_=Campaign.pause_reason),
        )
        .returning(
            Campaign.status,
            Campaign.paused_at,
            Campaign.pause_reason,
            # read here, unlocked, so that an org without rate limits needs no query of its
            # own to know whether its relay is resting
            _RESTING,
        )
    )


_COUNTERS = _counters_statement()
# A chunk with nothing to record still reads its campaign's status under a lock: shared, so
# that chunks of several workers do not wait for each other, but a pause (an UPDATE) waits.
_STATUS = (
    select(Campaign.status, _RESTING)
    .where(Campaign.id == bindparam("campaign_id", type_=Campaign.id.type))
    .with_for_update(read=True, of=Campaign)
)


def relay_failure_reason(last: str | None, limit: int) -> str:
    return (
        f"{limit} messages in a row could not be sent for a reason that is not their "
        f"recipient's; the last one: {last or 'no answer'}. Resume once the relay "
        "works again."
    )[:2000]


def refused_login_reason(reply: str) -> str:
    return (
        f"The SMTP relay refused Herald's login ({reply}). Correct the username or password "
        "under Settings → Email configuration, then resume."
    )[:2000]


def read_state(session: Session, campaign_id: uuid.UUID) -> CampaignState:
    """The campaign's status under a shared lock, when there is nothing to move (see _STATUS)."""
    row = session.connection().execute(_STATUS, {"campaign_id": campaign_id}).one_or_none()
    if row is None:
        return CampaignState(CampaignStatus.DRAFT.value)
    return CampaignState(row.status, relay_resting_until=row[1])


def add_to_counters(session: Session, campaign_id: uuid.UUID, counts: Counter[str]) -> None:
    """Move a campaign's counters, and mark it SENT once no send is pending."""
    if any(counts.values()):
        move_counters(session, campaign_id, counts)


def move_counters(
    session: Session,
    campaign_id: uuid.UUID,
    counts: Counter[str],
    *,
    streak_reset: bool = False,
    streak_add: int = 0,
    streak_reason: str | None = None,
    pause_reason: str | None = None,
    autopause: int = NEVER,
) -> CampaignState:
    """One UPDATE (it runs once per chunk on the sending path); see _counters_statement."""
    now = utcnow()
    row = (
        session.connection()
        .execute(
            _COUNTERS,
            {
                "campaign_id": campaign_id,
                "delivered": counts["delivered"],
                "failed": counts["failed"],
                "unknown": counts["unknown"],
                "cancelled": counts["cancelled"],
                "bounced": counts["bounced"],
                "complaints": counts["complaints"],
                "streak_reset": streak_reset,
                "streak_add": streak_add,
                "streak_reason": streak_reason,
                "pause_reason": pause_reason,
                "autopause": autopause,
                "now": now,
            },
        )
        .one_or_none()
    )
    if row is None:  # deleted: only a DRAFT can be, and a DRAFT has no sends
        return CampaignState(CampaignStatus.DRAFT.value)
    status, paused_at, reason, resting = row
    return CampaignState(status, paused_at == now, reason, resting)


def hold_campaign(
    session: Session,
    campaign_id: uuid.UUID,
    reason: str,
    seconds: float,
    failures: int,
    autopause_failures: int,
) -> CampaignState:
    """The relay could not be reached for ``failures`` sends: they wait ``seconds`` (the
    campaign is held, nobody is failed), and they count towards the run that pauses it."""
    state = move_counters(
        session,
        campaign_id,
        Counter(),
        streak_add=failures,
        streak_reason=relay_failure_reason(reason, autopause_failures),
        autopause=autopause_failures,
    )
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(
            hold_reason=reason[:2000], held_until=db_now(session) + dt.timedelta(seconds=seconds)
        )
        .execution_options(synchronize_session=False)
    )
    return state


def clear_hold(session: Session, campaign_id: uuid.UUID) -> None:
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.hold_reason.is_not(None))
        .values(hold_reason=None, held_until=None)
        .execution_options(synchronize_session=False)
    )
