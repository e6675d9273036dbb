"""Opens and clicks over time for the campaign page, human and machine apart: one GROUP BY
query each (scoped by org) and the geometry of a small server-rendered stacked bar chart.

A send counts once, in the hour of its first open (click), as human or machine as it
counts in the campaign's figures, so the bars add up to the KPI cards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, func, or_, select
from sqlalchemy.orm import Session

from herald.marketing.models import MarketingSend

CHART_WIDTH = 600
CHART_HEIGHT = 120
MAX_BARS = 48
MAX_BAR_WIDTH = 40.0

S = MarketingSend


@dataclass(frozen=True)
class Bar:
    """One hour: its human part at the bottom, its machine part stacked on it."""

    label: str  # "YYYY-MM-DD HH:00" (UTC)
    human: int
    machine: int
    x: float
    width: float
    human_y: float
    human_height: float
    machine_y: float
    machine_height: float

    @property
    def count(self) -> int:
        return self.human + self.machine


def _hour_bucket(dialect: str, column: Any) -> ColumnElement[str]:
    """The UTC hour of a timestamp as text; the one place where SQLite and PostgreSQL differ."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", column)


def _per_hour(
    session: Session,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    first: Any,
    human: ColumnElement[bool],
) -> list[tuple[str, int, int]]:
    """(hour, human, machine) by the hour of ``first``, oldest first; the latest MAX_BARS."""
    bucket = _hour_bucket(session.get_bind().dialect.name, first).label("hour")
    humans = func.sum(case((human, 1), else_=0), type_=Integer)
    stmt = (
        select(bucket, humans, func.count())
        .where(S.org_id == org_id, S.campaign_id == campaign_id, first.is_not(None))
        .group_by(bucket)
        .order_by(bucket.desc())
        .limit(MAX_BARS)
    )
    rows = [(str(hour), int(h or 0), int(n) - int(h or 0)) for hour, h, n in session.execute(stmt)]
    return list(reversed(rows))


def opens_per_hour(
    session: Session, org_id: uuid.UUID, campaign_id: uuid.UUID
) -> list[tuple[str, int, int]]:
    """Unique opens per hour; a send with a human open or click is a human open."""
    human = or_(S.open_human_at.is_not(None), S.click_human_at.is_not(None))
    return _per_hour(session, org_id, campaign_id, S.opened_at, human)


def clicks_per_hour(
    session: Session, org_id: uuid.UUID, campaign_id: uuid.UUID
) -> list[tuple[str, int, int]]:
    """Sends clicked per hour: human if one of their clicks is."""
    return _per_hour(session, org_id, campaign_id, S.clicked_at, S.click_human_at.is_not(None))


def bars(points: list[tuple[str, int, int]]) -> list[Bar]:
    """Bars scaled to the chart: the busiest hour fills the height."""
    if not points:
        return []
    peak = max(human + machine for _, human, machine in points) or 1
    slot = CHART_WIDTH / len(points)
    width = min(max(slot * 0.8, 1.0), MAX_BAR_WIDTH)
    result = []
    for index, (label, human, machine) in enumerate(points):
        human_height = round(CHART_HEIGHT * human / peak, 1)
        machine_height = round(CHART_HEIGHT * machine / peak, 1)
        human_y = round(CHART_HEIGHT - human_height, 1)
        result.append(
            Bar(
                label,
                human,
                machine,
                round(index * slot + (slot - width) / 2, 1),
                round(width, 1),
                human_y,
                human_height,
                round(human_y - machine_height, 1),
                machine_height,
            )
        )
    return result
