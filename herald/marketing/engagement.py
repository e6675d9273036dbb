"""A send's engagement (its opens and clicks, human or machine) and the campaign counters
that follow from it, for the writers of buffered hits (opens.py, clicks.py).

A writer loads the sends its hits name, locked (``FOR UPDATE`` on PostgreSQL; SQLite's
writer already holds the database), changes them in memory, saves them and moves each
campaign's counters by the difference of the sends' figures before and after. So a send
counts once whatever arrives, and moves from machine to human (a person opens what a
scanner fetched) or back (its trap link was followed) exactly once, under any concurrency.
"""

from __future__ import annotations

import datetime as dt
import operator
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from sqlalchemy import Integer, Update, bindparam, select, update
from sqlalchemy.orm import Session

from herald.marketing.classify import Reason, after_trap, seconds
from herald.marketing.models import Campaign, MarketingSend, SendStatus

S = MarketingSend
CHUNK = 500  # tokens or ids per statement: well under every database's bound values
# A hit proves the message went out: a send still in its SMTP transaction (its delivery not
# recorded yet) counts as well as a delivered one, so a scanner's instant hit is not lost.
ENGAGED = (SendStatus.DELIVERED.value, SendStatus.SENDING.value)
FIGURES = ("opens", "human_opens", "machine_opens", "clicks", "machine_clicks")

STATE = ("opened_at", "open_human_at", "clicked_at", "click_human_at", "trapped_at")
KEPT = (*STATE, "machine_reason", "human_link_hits")  # what save() writes
_KEPT_OF = operator.attrgetter(*KEPT)  # one call per send: a flood saves thousands a second
# One UPDATE per set of changed columns, built once: a first click changes four of the
# seven, a repeated one mostly one, and each value written costs its conversion. Bind
# names differ from the columns' (SQLAlchemy reserves those for the SET clause).
_SAVES: dict[tuple[str, ...], Update] = {}


def _save_statement(names: tuple[str, ...]) -> Update:
    stmt = _SAVES.get(names)
    if stmt is None:
        values = {name: bindparam(f"b_{name}", type_=S.__table__.c[name].type) for name in names}
        stmt = _SAVES[names] = update(S).where(S.id == bindparam("b_id")).values(values)
    return stmt


_COUNT = (
    update(Campaign)
    .where(Campaign.id == bindparam("b_campaign_id"))
    .values(
        {
            name: getattr(Campaign, name) + bindparam(f"d_{name}", type_=Integer())
            for name in FIGURES
        }
    )
)


Figures = tuple[int, int, int, int, int]


def _figures(
    opened_at: object, open_human_at: object, clicked_at: object, click_human_at: object
) -> Figures:
    opened = opened_at is not None
    human = open_human_at is not None or click_human_at is not None
    clicked = clicked_at is not None
    human_click = click_human_at is not None
    return (
        int(opened),
        int(opened and human),
        int(opened and not human),
        int(human_click),
        int(clicked and not human_click),
    )


def earliest(current: dt.datetime | None, at: dt.datetime) -> dt.datetime:
    return at if current is None or at < current else current


@dataclass
class SendEngagement:
    """One send as a writer changes it. ``*_human_at``: the first human open (by the pixel)
    and click still standing; a human click is a human open too."""

    id: int
    token: str
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    delivered_at: dt.datetime | None
    opened_at: dt.datetime | None
    open_human_at: dt.datetime | None
    clicked_at: dt.datetime | None
    click_human_at: dt.datetime | None
    trapped_at: dt.datetime | None
    machine_reason: str | None
    human_link_hits: dict[str, int] | None
    loaded: tuple[object, ...] = field(init=False, repr=False)  # the state as read

    def __post_init__(self) -> None:
        self.loaded = self.state()

    def figures(self) -> Figures:
        """What this send adds to its campaign's counters, in the order of FIGURES."""
        return _figures(*self.state()[:4])

    def state(self) -> tuple[object, ...]:
        state: tuple[object, ...] = _KEPT_OF(self)
        return state

    def changed(self) -> tuple[str, ...]:
        """The kept columns that differ from what was read."""
        return tuple(
            name
            for name, now, then in zip(KEPT, self.state(), self.loaded, strict=True)
            if now != then
        )

    def opened(self, at: dt.datetime, reason: Reason | None) -> None:
        """A pixel hit; ``reason`` is the request's machine reason, if any."""
        reason = reason or after_trap(at.timestamp(), seconds(self.trapped_at))
        self.opened_at = earliest(self.opened_at, at)
        if reason is None:
            self.open_human_at = earliest(self.open_human_at, at)
        else:
            self.machine_reason = reason.value

    def clicked(self, at: dt.datetime, reason: Reason | None) -> None:
        """A click counts an open of its class. Whether a human click still stands is the
        click rows' business (``click_human_at`` is set by the clicks writer)."""
        self.opened_at = earliest(self.opened_at, at)
        self.clicked_at = earliest(self.clicked_at, at)
        if reason is not None:
            self.machine_reason = reason.value

    def trapped(self, at: dt.datetime) -> None:
        """The trap link was followed: every hit of the send so far was a machine's."""
        self.trapped_at = at if self.trapped_at is None or at > self.trapped_at else self.trapped_at
        self.open_human_at = None
        self.click_human_at = None
        self.machine_reason = Reason.TRAP_LINK.value


# Read in the order of SendEngagement's fields (its rows are built by position).
_COLUMNS = tuple(getattr(S, f.name) for f in fields(SendEngagement) if f.init)


def load(
    session: Session, tokens: list[str], *, without_human_open: bool = False
) -> list[SendEngagement]:
    """The engaged sends of these tokens (unknown ones left out), locked, in token order
    (so two writers lock in the same order and cannot deadlock). ``without_human_open``:
    only those a pixel hit can still change."""
    connection = session.connection()
    found: list[SendEngagement] = []
    for start in range(0, len(tokens), CHUNK):
        stmt = (
            select(*_COLUMNS)
            .where(S.token.in_(tokens[start : start + CHUNK]), S.status.in_(ENGAGED))
            .order_by(S.token)
            .with_for_update()  # SQLite has no row locks and renders nothing for it
        )
        if without_human_open:
            stmt = stmt.where(S.open_human_at.is_(None))
        found.extend(SendEngagement(*row) for row in connection.execute(stmt))
    return found


def save(session: Session, sends: Iterable[SendEngagement]) -> dict[uuid.UUID, dict[str, int]]:
    """Write what changed of these sends since they were read and move their campaigns'
    counters; the counter moves per campaign, returned."""
    rows: dict[tuple[str, ...], list[dict[str, object]]] = {}
    moves: dict[uuid.UUID, list[int]] = {}
    for send in sends:
        names = send.changed()
        if not names:
            continue
        row: dict[str, object] = {"b_id": send.id}
        for name in names:
            row[f"b_{name}"] = getattr(send, name)
        rows.setdefault(names, []).append(row)
        move = moves.setdefault(send.campaign_id, [0] * len(FIGURES))
        before = _figures(*send.loaded[:4])
        for i, (now, then) in enumerate(zip(send.figures(), before, strict=True)):
            move[i] += now - then
    connection = session.connection()
    for names, group in rows.items():
        connection.execute(_save_statement(names), group)
    for campaign_id in sorted(moves, key=str):  # one order: concurrent writers cannot deadlock
        move = moves[campaign_id]
        if any(move):
            params = {f"d_{name}": n for name, n in zip(FIGURES, move, strict=True)}
            connection.execute(_COUNT, {"b_campaign_id": campaign_id, **params})
    return {c: dict(zip(FIGURES, move, strict=True)) for c, move in moves.items()}
