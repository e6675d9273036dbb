"""What marketing lets other areas learn and change about its sends after delivery: finding
the send a bounce or complaint is about, marking it BOUNCED or complained, and the
campaign's counters moved with it (one UPDATE of the campaign row, never a count of sends).

Used by herald.bounces, a batch of reports at a time (a flood of bounces costs a few
statements per batch, not a few per bounce); every function runs in the caller's unit of
work. The queries are herald.marketing.repository's (DeliveredSendRepository and the
batch's); the rules are here.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from herald.marketing import repository
from herald.marketing.counters import add_to_counters
from herald.marketing.models import SendStatus
from herald.marketing.repository import DeliveredSendRepository, SendFacts
from herald.text import MAX_REASON

_IN_FLIGHT = (SendStatus.QUEUED.value, SendStatus.SENDING.value)
_SETTLED = (SendStatus.DELIVERED.value, SendStatus.UNKNOWN.value)


def sends_facts(
    session: Session, wanted: Collection[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], SendFacts]:
    """The sends named by (org, send id), in one query; another org's send is left out."""
    return repository.sends_facts(session, wanted)


def latest_delivered_send(session: Session, org_id: uuid.UUID, email: str) -> SendFacts | None:
    """The org's latest DELIVERED or BOUNCED send to ``email``, whoever's contact it was
    (the contact may have another address now, or be deleted)."""
    return DeliveredSendRepository(session, org_id).latest_to(email)


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

    @property
    def kind(self) -> str:
        return "hard" if self.hard else "soft"

    @property
    def error(self) -> str:
        return self.reason[:MAX_REASON] or f"Bounced ({self.kind})."

    def change(self, seen: str, status: str) -> repository.SendBounce:
        """The send from ``seen`` to ``status``, with this bounce."""
        send = self.send
        return repository.SendBounce(
            send.id, send.org_id, seen, status, self.kind, self.at, self.error
        )


def record_bounces(session: Session, bounces: Sequence[Bounce]) -> None:
    """``record_bounce`` for each (distinct sends): the DELIVERED and UNKNOWN ones, nearly
    all of them, in one UPDATE of many rows and one UPDATE of each campaign's counters; the
    others one by one, and all of them so should one have changed since it was read."""
    settled = [b for b in bounces if b.send.status in _SETTLED]
    if len(settled) > 1:
        savepoint = session.begin_nested()
        changes = [b.change(b.send.status, SendStatus.BOUNCED.value) for b in settled]
        if repository.mark_sends_bounced(session, changes) == len(changes):
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
    sends = DeliveredSendRepository(session, send.org_id)
    status = send.status
    for _attempt in range(3):
        if status in _SETTLED:
            if sends.mark_bounced(bounce.change(status, SendStatus.BOUNCED.value)):
                counts = Counter({status.lower(): -1, "failed": 1, "bounced": 1})
                add_to_counters(session, send.campaign_id, counts)
                return Bounced.BOUNCED
        elif status in _IN_FLIGHT:  # it keeps its status
            if sends.mark_bounced(bounce.change(status, status)):
                return Bounced.PENDING
        elif status == SendStatus.BOUNCED.value:
            if bounce.hard and sends.harden(send.id, bounce.error):
                return Bounced.HARDENED
            return Bounced.UNCHANGED
        else:
            return Bounced.UNCHANGED
        status = sends.status(send.id) or ""
    return Bounced.UNCHANGED


def record_complaint(session: Session, send: SendFacts, at: dt.datetime) -> bool:
    """The send's complainedAt (its status stays) and its campaign's complaints; False when
    it was already counted."""
    if not DeliveredSendRepository(session, send.org_id).mark_complained(send.id, at):
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
    newest = DeliveredSendRepository(session, send.org_id).newest_to(send.email, limit)
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
