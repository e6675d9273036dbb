"""Clicks on tracked links: their hits, buffered, each kept as a row (when, which link, its
class and reason), each link's unique and total clicks, and the send's engagement.

The rules that need the send's history are applied here, in the writer's transaction:
a click within seconds of delivery, another link of the message within a second or two
(that earlier click turns machine too), and the trap link (every hit of the send so far
turns machine). Counters move by the difference of before and after, so a link's unique
clicks and a campaign's figures stay exact whatever order hits arrive in.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Integer, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from herald.mail.links import TRAP_LINK
from herald.marketing import engagement
from herald.marketing.classify import (
    BURST_SECONDS,
    Reason,
    after_trap,
    click_burst,
    fast_click,
)
from herald.marketing.hits import HitRecorder
from herald.marketing.models import MarketingClick, MarketingLink
from herald.runtime import Runtime

C = MarketingClick
L = MarketingLink


class ClickHit(NamedTuple):
    """One request on ``/c/{token}/{link}``. ``seq`` makes every request its own hit (the
    recorder counts equal hits once; every click counts). Sorted by token first, so each
    flush locks its sends in one order."""

    token: str
    at: float  # time.time() when the request arrived
    seq: int
    link: int
    reason: str  # the request's machine reason, "" for none


@dataclass
class _Row:
    """A click row of one send: already stored (``id``) or written by this flush."""

    id: int | None
    link: int
    at: dt.datetime
    machine: bool
    reason: str | None
    flipped: bool = False  # a stored human row this flush turns machine

    def turn_machine(self, reason: Reason) -> None:
        if not self.machine:
            self.machine, self.reason = True, reason.value
            self.flipped = self.id is not None


_INSERT = insert(C)
_FLIP = (
    update(C)
    .where(C.id == bindparam("b_id"))
    .values(machine=True, reason=bindparam("b_reason"))
    .execution_options(synchronize_session=False)
)
_LINK_COUNTS = (
    update(L)
    .where(L.campaign_id == bindparam("b_campaign_id"), L.n == bindparam("b_n"))
    .values(
        clicks=L.clicks + bindparam("d_clicks", type_=Integer()),
        unique_clicks=L.unique_clicks + bindparam("d_unique", type_=Integer()),
        machine_clicks=L.machine_clicks + bindparam("d_machine", type_=Integer()),
    )
)


def record_clicks(session: Session, hits: list[ClickHit]) -> int:
    """Store these clicks of sends that went out (others are left out) and move the
    counters; returns how many were stored."""
    by_token: dict[str, list[ClickHit]] = defaultdict(list)
    for hit in hits:
        by_token[hit.token].append(hit)
    sends = engagement.load(session, sorted(by_token))
    if not sends:
        return 0
    ids = [send.id for send in sends]
    earliest = min(hit.at for hit in hits)
    cutoff = dt.datetime.fromtimestamp(earliest - BURST_SECONDS, dt.UTC)
    recent = _recent_rows(session, ids, cutoff)
    human_before = _human_hits(session, ids)

    flushes = [
        _SendFlush(send, recent.get(send.id, []), human_before.get(send.id, Counter()))
        for send in sends
    ]
    for flush in flushes:
        for hit in sorted(by_token[flush.send.token], key=lambda h: (h.at, h.seq)):
            flush.apply(hit)
    return _write(session, flushes)


class _SendFlush:
    """One send's clicks of this flush, applied in time order."""

    def __init__(
        self, send: engagement.SendEngagement, recent: list[_Row], human_before: Counter[int]
    ) -> None:
        self.send = send
        self.before = send.figures()
        self.state = send.state()
        self.recent = recent
        self.human_before = human_before  # stored human hits per link, before this flush
        self.new: list[_Row] = []
        self.trapped = False  # every stored human hit turns machine

    def apply(self, hit: ClickHit) -> None:
        at = dt.datetime.fromtimestamp(hit.at, dt.UTC)
        seen = [*self.recent, *self.new]
        reason = Reason(hit.reason) if hit.reason else None
        if hit.link == TRAP_LINK:
            reason = Reason.TRAP_LINK
            self.trapped = True
            self.send.trapped(at)
            for row in seen:
                row.turn_machine(Reason.TRAP_LINK)
        else:
            # another link of the message within seconds: this hit and those before it are
            # a scanner's, whatever else this hit is
            burst = click_burst(at, hit.link, ((row.at, row.link) for row in seen))
            if burst is not None:
                for row in seen:
                    if row.link != hit.link and click_burst(at, hit.link, [(row.at, row.link)]):
                        row.turn_machine(burst)
            reason = (
                reason
                or after_trap(at, self.send.trapped_at)
                or fast_click(at, self.send.delivered_at)
                or burst
            )
        self.new.append(
            _Row(None, hit.link, at, reason is not None, reason.value if reason else None)
        )
        self.send.clicked(at, reason)

    def human_after(self) -> Counter[int]:
        """Human hits per link once this flush is written."""
        after = Counter() if self.trapped else Counter(self.human_before)
        for row in self.recent:
            if row.flipped and not self.trapped:
                after[row.link] -= 1
        for row in self.new:
            if not row.machine:
                after[row.link] += 1
        return after

    def downgraded(self) -> bool:
        """Whether a stored human hit turned machine (the first human click must be
        found again among what is left)."""
        return self.trapped or any(row.flipped for row in self.recent)

    def link_moves(self) -> Iterable[tuple[int, Counter[str]]]:
        """Per link: human hits, sends with a human hit (0 or 1 here), machine hits."""
        after = self.human_after()
        new_human = Counter(row.link for row in self.new if not row.machine)
        new_machine = Counter(row.link for row in self.new if row.machine)
        for link in sorted(set(self.human_before) | set(after) | set(new_machine)):
            if link == TRAP_LINK:
                continue
            before = self.human_before[link]
            stored_flipped = before - (after[link] - new_human[link])
            yield (
                link,
                Counter(
                    clicks=after[link] - before,
                    machine=new_machine[link] + stored_flipped,
                    unique=int(after[link] > 0) - int(before > 0),
                ),
            )


def _recent_rows(session: Session, ids: list[int], cutoff: dt.datetime) -> dict[int, list[_Row]]:
    """The sends' clicks since ``cutoff`` (what the burst rule compares with)."""
    rows: dict[int, list[_Row]] = defaultdict(list)
    for start in range(0, len(ids), engagement.CHUNK):
        stmt = select(C.id, C.send_id, C.link, C.at, C.machine, C.reason).where(
            C.send_id.in_(ids[start : start + engagement.CHUNK]), C.at >= cutoff
        )
        for row in session.execute(stmt):
            rows[row.send_id].append(_Row(row.id, row.link, row.at, row.machine, row.reason))
    return rows


def _human_hits(session: Session, ids: list[int]) -> dict[int, Counter[int]]:
    """The sends' stored human hits per link, counted by the database (a send clicked
    many times returns one row per link)."""
    found: dict[int, Counter[int]] = defaultdict(Counter)
    for start in range(0, len(ids), engagement.CHUNK):
        stmt = (
            select(C.send_id, C.link, func.count())
            .where(C.send_id.in_(ids[start : start + engagement.CHUNK]), C.machine.is_(False))
            .group_by(C.send_id, C.link)
        )
        for send_id, link, n in session.execute(stmt):
            found[send_id][link] = n
    return found


def _write(session: Session, flushes: list[_SendFlush]) -> int:
    connection = session.connection()
    trapped = [f.send.id for f in flushes if f.trapped]
    for start in range(0, len(trapped), engagement.CHUNK):
        connection.execute(
            update(C)
            .where(C.send_id.in_(trapped[start : start + engagement.CHUNK]), C.machine.is_(False))
            .values(machine=True, reason=Reason.TRAP_LINK.value)
            .execution_options(synchronize_session=False)
        )
    flips = [
        {"b_id": row.id, "b_reason": row.reason}
        for f in flushes
        if not f.trapped
        for row in f.recent
        if row.flipped
    ]
    if flips:
        connection.execute(_FLIP, flips)
    new_rows = [
        {
            "org_id": f.send.org_id,
            "campaign_id": f.send.campaign_id,
            "send_id": f.send.id,
            "link": row.link,
            "at": row.at,
            "machine": row.machine,
            "reason": row.reason,
        }
        for f in flushes
        for row in f.new
    ]
    connection.execute(_INSERT, new_rows)
    _first_human_clicks(session, flushes)
    engagement.save(session, [(f.send, f.before) for f in flushes if f.send.state() != f.state])
    _move_link_counters(session, flushes)
    return len(new_rows)


def _first_human_clicks(session: Session, flushes: list[_SendFlush]) -> None:
    """Each send's first human click still standing: found again where a stored one turned
    machine, else the earliest of the stored one and this flush's."""
    again = [f for f in flushes if f.downgraded()]
    firsts: dict[int, dt.datetime] = {}
    ids = [f.send.id for f in again]
    for start in range(0, len(ids), engagement.CHUNK):
        stmt = (
            select(C.send_id, func.min(C.at))
            .where(
                C.send_id.in_(ids[start : start + engagement.CHUNK]),
                C.machine.is_(False),
                C.link != TRAP_LINK,
            )
            .group_by(C.send_id)
        )
        firsts.update({send_id: first for send_id, first in session.execute(stmt)})
    for f in flushes:
        if f.downgraded():
            f.send.click_human_at = firsts.get(f.send.id)
        for row in f.new:
            if not row.machine:
                f.send.click_human_at = engagement.earliest(f.send.click_human_at, row.at)


def _move_link_counters(session: Session, flushes: list[_SendFlush]) -> None:
    moves: dict[tuple[uuid.UUID, int], Counter[str]] = defaultdict(Counter)
    for f in flushes:
        for link, move in f.link_moves():
            moves[f.send.campaign_id, link].update(move)
    rows = [
        {
            "b_campaign_id": campaign_id,
            "b_n": link,
            "d_clicks": move["clicks"],
            "d_unique": move["unique"],
            "d_machine": move["machine"],
        }
        for (campaign_id, link), move in sorted(
            moves.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])
        )
        if any(move.values())
    ]
    if rows:
        session.connection().execute(_LINK_COUNTS, rows)


def click_recorder(runtime: Runtime, interval: float) -> HitRecorder[ClickHit]:
    return HitRecorder(runtime, record_clicks, "clicks", interval)
