"""Sending control: schedule, unschedule, pause, resume and cancel a campaign.

Each is one conditional UPDATE of the campaign's status, so of two callers acting at once
(two people, or a person and a worker) exactly one wins and the other gets 409. Pause and
the worker's next chunk meet on the campaign's row: a worker marks a chunk in flight only
in a transaction that holds a lock on that row (see counters.py), so once ``pause`` has
committed no new SMTP transaction starts; the chunk already in flight completes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.db import db_now, utcnow
from herald.errors import Conflict, ValidationFailed
from herald.log import get_logger
from herald.marketing import relay
from herald.marketing.counters import CampaignState, add_to_counters
from herald.marketing.launch import launch_problem, target
from herald.marketing.models import Campaign, CampaignStatus, SendStatus
from herald.marketing.queue import cancel_queued
from herald.marketing.repository import CampaignRepository, SendRepository

log = get_logger("herald.worker")
MAX_SCHEDULE_AHEAD = dt.timedelta(days=365)
CANCELLABLE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)

S = CampaignStatus


def _conflict(campaign: Campaign, expected: tuple[CampaignStatus, ...], action: str) -> Conflict:
    names = " or ".join(status.value for status in expected)
    code = "not_" + "_or_".join(status.value.lower() for status in expected)
    return Conflict(
        f"Only a {names} campaign can be {action}; this one is {campaign.status}.",
        code=code,
        details={"status": campaign.status},
    )


def _move(
    session: Session,
    campaign: Campaign,
    expected: tuple[CampaignStatus, ...],
    action: str,
    values: dict[str, Any],
) -> Campaign:
    """``campaign`` from one of ``expected`` to ``values``, or 409 if its status moved."""
    taken = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status.in_([s.value for s in expected]))
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(campaign)
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise _conflict(campaign, expected, action)
    return campaign


def _change(
    session: Session,
    org_id: uuid.UUID,
    campaign_id: str,
    expected: tuple[CampaignStatus, ...],
    values: dict[str, Any],
    *,
    actor: audit.Actor,
    event: str,
    details: dict[str, Any] | None = None,
) -> Campaign:
    """One transition as a person makes it: the campaign (404), its move (409), the audit
    event ``campaign.<event>``."""
    campaign = CampaignRepository(session, org_id).get(campaign_id)
    _move(session, campaign, expected, event, values)
    audit.record(session, actor, f"campaign.{event}", target=target(campaign), details=details)
    return campaign


def _as_utc(at: dt.datetime) -> dt.datetime:
    """A time without an offset is UTC (the API's timestamps are)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def schedule_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, at: dt.datetime, *, actor: audit.Actor
) -> Campaign:
    """DRAFT -> SCHEDULED: a worker launches it at ``at`` (eligibility is decided then).
    409 unless DRAFT; 422 when ``at`` is not in the future or more than a year ahead, or
    when a launch now would fail (SMTP not configured, no sender address)."""
    campaign = CampaignRepository(session, org_id).get(campaign_id)
    if campaign.status != S.DRAFT.value:
        raise _conflict(campaign, (S.DRAFT,), "scheduled")
    when, now = _as_utc(at), utcnow()
    if when <= now:
        raise ValidationFailed("at must be in the future.", field="at")
    if when > now + MAX_SCHEDULE_AHEAD:
        raise ValidationFailed("at must be at most a year from now.", field="at")
    problem = launch_problem(session, org_id, campaign)
    if problem is not None:
        message, code = problem
        raise ValidationFailed(message, code=code)
    _move(
        session,
        campaign,
        (S.DRAFT,),
        "scheduled",
        {"status": S.SCHEDULED.value, "scheduled_at": when, "failure_reason": None},
    )
    details = {"at": when.isoformat()}
    audit.record(session, actor, "campaign.scheduled", target=target(campaign), details=details)
    return campaign


def unschedule_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
) -> Campaign:
    """SCHEDULED -> DRAFT (editable again); 409 unless SCHEDULED."""
    values = {"status": S.DRAFT.value, "scheduled_at": None}
    return _change(
        session, org_id, campaign_id, (S.SCHEDULED,), values, actor=actor, event="unscheduled"
    )


def pause_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
) -> Campaign:
    """SENDING -> PAUSED; 409 unless SENDING. Once this has committed no new message of the
    campaign starts; those already in flight complete."""
    values = {
        "status": S.PAUSED.value,
        "paused_at": utcnow(),
        "pause_reason": f"Paused by {actor.name}.",
    }
    return _change(session, org_id, campaign_id, (S.SENDING,), values, actor=actor, event="paused")


def resume_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
) -> Campaign:
    """PAUSED -> SENDING: the sends still QUEUED go out (each contact gets one message);
    SENT at once if nothing is left. 409 unless PAUSED."""
    finished = (
        Campaign.delivered + Campaign.failed + Campaign.unknown + Campaign.cancelled
        >= Campaign.recipients
    )
    now = utcnow()
    values = {
        "status": case((finished, S.SENT.value), else_=S.SENDING.value),
        "completed_at": case((finished, now), else_=None),
        "paused_at": None,
        "pause_reason": None,
        "failure_streak": 0,
        "hold_reason": None,
        "held_until": None,
    }
    return _change(session, org_id, campaign_id, (S.PAUSED,), values, actor=actor, event="resumed")


def cancel_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
) -> Campaign:
    """SCHEDULED, SENDING or PAUSED -> CANCELLED, final: every QUEUED send becomes CANCELLED
    and is never sent (counted in ``cancelled``); sends in flight complete. 409 otherwise."""
    campaign = CampaignRepository(session, org_id).get(campaign_id)
    values = {"status": S.CANCELLED.value, "completed_at": utcnow(), "hold_reason": None}
    _move(session, campaign, CANCELLABLE, "cancelled", values)
    not_sent = cancel_queued(session, campaign.id)
    add_to_counters(session, campaign.id, Counter(cancelled=not_sent))
    session.refresh(campaign)
    details = {"notSent": not_sent}
    audit.record(session, actor, "campaign.cancelled", target=target(campaign), details=details)
    return campaign


def pause_by_worker(session: Session, campaign_id: uuid.UUID, reason: str) -> bool:
    """A worker found the campaign cannot be sent until someone acts (the relay refused
    the login, the stored password cannot be read, the From address is unusable): SENDING
    -> PAUSED with the reason. False when it was not SENDING any more."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return False
    values = {"status": S.PAUSED.value, "paused_at": utcnow(), "pause_reason": reason[:2000]}
    try:
        _move(session, campaign, (S.SENDING,), "paused", values)
    except Conflict:
        return False
    record_pause_by_worker(session, campaign, reason)
    return True


def record_pause_by_worker(session: Session, campaign: Campaign, reason: str | None) -> None:
    actor = audit.system_actor(campaign.org_id, audit.WORKER)
    details = {"reason": reason, "automatic": True}
    audit.record(session, actor, "campaign.paused", target=target(campaign), details=details)
    log.warning("campaign.paused_itself", campaign_id=str(campaign.id), reason=reason)


def note_self_pause(session: Session, campaign_id: uuid.UUID, state: CampaignState) -> None:
    """Into the audit log, a pause the counters' UPDATE just made (see counters.py)."""
    if state.paused_now:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None:
            record_pause_by_worker(session, campaign, state.pause_reason)


def not_sent_if_cancelled(session: Session, org_id: uuid.UUID, campaign: Campaign) -> int:
    """How many messages a cancel now would stop: the sends still QUEUED (those in flight
    complete)."""
    if campaign.status not in (S.SENDING.value, S.PAUSED.value):
        return 0
    in_flight = SendRepository(session, org_id).count_in_status(
        campaign.id, SendStatus.SENDING.value
    )
    return max(campaign.pending - in_flight, 0)


def relay_wait(session: Session, campaign: Campaign) -> relay.RelayWait | None:
    """Why the campaign's relay is resting now (a throttling answer), while it is sending."""
    if campaign.status != S.SENDING.value:
        return None
    return relay.current_wait(session, campaign.org_id, db_now(session))
