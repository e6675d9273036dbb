"""Opens over time for the campaign page: one GROUP BY query (scoped by org) and the bar
geometry of a small server-rendered SVG chart."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from herald.marketing.models import MarketingSend

CHART_WIDTH = 600
CHART_HEIGHT = 120
MAX_BARS = 48
MAX_BAR_WIDTH = 40.0


@dataclass(frozen=True)
class Bar:
    label: str  # "YYYY-MM-DD HH:00" (UTC)
    count: int
    x: float
    y: float
    width: float
    height: float


def _hour_bucket(dialect: str, column: Any) -> ColumnElement[str]:
    """The UTC hour of a timestamp as text; the one place where SQLite and PostgreSQL differ."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", column)


def opens_per_hour(
    session: Session, org_id: uuid.UUID, campaign_id: uuid.UUID
) -> list[tuple[str, int]]:
    """(hour, unique opens) for the campaign's sends, oldest first; the latest MAX_BARS hours."""
    bucket = _hour_bucket(session.get_bind().dialect.name, MarketingSend.opened_at).label("hour")
    stmt = (
        select(bucket, func.count())
        .where(
            MarketingSend.org_id == org_id,
            MarketingSend.campaign_id == campaign_id,
            MarketingSend.opened_at.is_not(None),
        )
        .group_by(bucket)
        .order_by(bucket.desc())
        .limit(MAX_BARS)
    )
    rows = [(str(hour), int(count)) for hour, count in session.execute(stmt).all()]
    return list(reversed(rows))


def bars(points: list[tuple[str, int]]) -> list[Bar]:
    """Bars scaled to the chart: the busiest hour fills the height."""
    if not points:
        return []
    peak = max(count for _, count in points) or 1
    slot = CHART_WIDTH / len(points)
    width = min(max(slot * 0.8, 1.0), MAX_BAR_WIDTH)
    result = []
    for index, (label, count) in enumerate(points):
        height = round(CHART_HEIGHT * count / peak, 1)
        x = round(index * slot + (slot - width) / 2, 1)
        result.append(
            Bar(label, count, x, round(CHART_HEIGHT - height, 1), round(width, 1), height)
        )
    return result
