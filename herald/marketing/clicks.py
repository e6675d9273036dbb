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
import itertools
import uuid
from collections import defaultdict
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
    seconds,
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


@dataclass(slots=True)
class _Row:
    """A click row of one send: already stored (``id``) or written by this flush."""

    id: int | None
    link: int
    at: float
    machine: bool
    reason: str | None
    flipped: bool = False  # a stored human row this flush turns machine

    def turn_machine(self, reason: Reason) -> None:
        if not self.machine:
            self.machine, self.reason = True, reason.value
            self.flipped = self.id is not None


_INSERT = insert(C)
# Built once: a flood runs them every flush.
_RECENT = select(C.id, C.send_id, C.link, C.at, C.machine).where(
    C.send_id.in_(bindparam("ids", expanding=True)), C.at >= bindparam("since")
)

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
    recent = _recent_rows(session, ids, min(hit.at for hit in hits) - BURST_SECONDS)
    flushes = [_SendFlush(send, recent[send.id]) for send in sends]
    for flush in flushes:
        for hit in sorted(by_token[flush.send.token], key=lambda h: (h.at, h.seq)):
            flush.apply(hit)
    return _write(session, flushes)


class _SendFlush:
    """One send's clicks of this flush, applied in time order."""

    def __init__(self, send: engagement.SendEngagement, recent: list[_Row]) -> None:
        self.send = send
        self.delivered_at = seconds(send.delivered_at)
        self.recent = recent
        # stored human hits per link, before this flush (kept with the send)
        self.human_before = {int(n): hits for n, hits in (send.human_link_hits or {}).items()}
        self.new: list[_Row] = []
        self.trapped = False  # every stored human hit turns machine

    def apply(self, hit: ClickHit) -> None:
        at, link = hit.at, hit.link
        seen = itertools.chain(self.recent, self.new)
        reason = Reason(hit.reason) if hit.reason else None
        if link == TRAP_LINK:
            reason = Reason.TRAP_LINK
            self.trapped = True
            self.send.trapped(dt.datetime.fromtimestamp(at, dt.UTC))
            for row in seen:
                row.turn_machine(Reason.TRAP_LINK)
        else:
            # another link of the message within seconds: this hit and those before it are
            # a scanner's, whatever else this hit is
            burst = None
            for row in seen:
                if click_burst(at, link, [(row.at, row.link)]):
                    burst = Reason.CLICK_BURST
                    row.turn_machine(burst)
            reason = (
                reason
                or after_trap(at, seconds(self.send.trapped_at))
                or fast_click(at, self.delivered_at)
                or burst
            )
        self.new.append(_Row(None, link, at, reason is not None, reason.value if reason else None))
        self.send.clicked(dt.datetime.fromtimestamp(at, dt.UTC), reason)

    def human_after(self) -> dict[int, int]:
        """Human hits per link once this flush is written."""
        after = {} if self.trapped else dict(self.human_before)
        for row in self.recent:
            if row.flipped and not self.trapped:
                after[row.link] -= 1
        for row in self.new:
            if not row.machine:
                after[row.link] = after.get(row.link, 0) + 1
        return after

    def downgraded(self) -> bool:
        """Whether a stored human hit turned machine (the first human click must be
        found again among what is left)."""
        return self.trapped or any(row.flipped for row in self.recent)

    def link_moves(self) -> Iterable[tuple[int, tuple[int, int, int]]]:
        """Per link: (human hits, sends with a human hit (-1, 0 or 1), machine hits)."""
        after = self.human_after()
        new_human: dict[int, int] = {}
        new_machine: dict[int, int] = {}
        for row in self.new:
            counted = new_machine if row.machine else new_human
            counted[row.link] = counted.get(row.link, 0) + 1
        for link in {*self.human_before, *after, *new_machine} - {TRAP_LINK}:
            before, now = self.human_before.get(link, 0), after.get(link, 0)
            stored_flipped = before - (now - new_human.get(link, 0))
            yield (
                link,
                (
                    now - before,
                    int(now > 0) - int(before > 0),
                    new_machine.get(link, 0) + stored_flipped,
                ),
            )


def _recent_rows(session: Session, ids: list[int], since: float) -> defaultdict[int, list[_Row]]:
    """The sends' clicks since ``since`` (what the burst rule compares with)."""
    rows: defaultdict[int, list[_Row]] = defaultdict(list)
    connection = session.connection()
    for start in range(0, len(ids), engagement.CHUNK):
        chunk = ids[start : start + engagement.CHUNK]
        found = connection.execute(_RECENT, {"ids": chunk, "since": since})
        for row_id, send_id, link, at, machine in found:
            rows[send_id].append(_Row(row_id, link, at, machine, None))
    return rows


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
    for f in flushes:
        kept = {str(n): hits for n, hits in sorted(f.human_after().items()) if hits > 0}
        f.send.human_link_hits = kept or None
    _first_human_clicks(session, flushes)
    engagement.save(session, [f.send for f in flushes])
    _move_link_counters(session, flushes)
    return len(new_rows)


def _first_human_clicks(session: Session, flushes: list[_SendFlush]) -> None:
    """Each send's first human click still standing: found again where a stored one turned
    machine (by the database only when stored human clicks remain), else the earliest of
    the stored one and this flush's."""
    ids = [f.send.id for f in flushes if f.downgraded() and _stored_human_left(f)]
    firsts: dict[int, float] = {}
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
        new_human = [row.at for row in f.new if not row.machine]
        if f.downgraded():
            first = firsts.get(f.send.id) or min(new_human, default=None)
            f.send.click_human_at = None if first is None else _time(first)
            continue
        if new_human:
            f.send.click_human_at = engagement.earliest(
                f.send.click_human_at, _time(min(new_human))
            )


def _stored_human_left(flush: _SendFlush) -> bool:
    """Whether human clicks stored before this flush still stand after it."""
    if flush.trapped:
        return False
    flipped: dict[int, int] = {}
    for row in flush.recent:
        if row.flipped:
            flipped[row.link] = flipped.get(row.link, 0) + 1
    return any(hits > flipped.get(n, 0) for n, hits in flush.human_before.items())


def _time(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.UTC)


def _move_link_counters(session: Session, flushes: list[_SendFlush]) -> None:
    moves: dict[tuple[uuid.UUID, int], list[int]] = {}
    for f in flushes:
        for link, (clicks, unique, machine) in f.link_moves():
            move = moves.setdefault((f.send.campaign_id, link), [0, 0, 0])
            move[0] += clicks
            move[1] += unique
            move[2] += machine
    rows = [
        {
            "b_campaign_id": campaign_id,
            "b_n": link,
            "d_clicks": move[0],
            "d_unique": move[1],
            "d_machine": move[2],
        }
        for (campaign_id, link), move in sorted(
            moves.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])
        )
        if any(move)
    ]
    if rows:
        session.connection().execute(_LINK_COUNTS, rows)


def click_recorder(runtime: Runtime, interval: float) -> HitRecorder[ClickHit]:
    return HitRecorder(runtime, record_clicks, "clicks", interval)
