"""Unique opens from the open pixel: its hits, buffered, counted once per delivered send."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from herald.db import utcnow
from herald.marketing.hits import HitRecorder
from herald.marketing.models import Campaign, MarketingSend, SendStatus
from herald.runtime import Runtime

_CHUNK = 500  # tokens per UPDATE: well under every database's limit of bound values

# Built once, the tokens one expanding parameter: a flood flushes thousands of hits a second.
_MARK_OPENED = (
    update(MarketingSend)
    .where(
        MarketingSend.token.in_(bindparam("tokens", expanding=True)),
        MarketingSend.opened_at.is_(None),
        # an open is counted against a delivery, so the open rate stays within 0..1
        MarketingSend.status == SendStatus.DELIVERED.value,
    )
    .values(opened_at=bindparam("now"))
    .returning(MarketingSend.campaign_id)
)
_COUNT_OPENS = (
    update(Campaign)
    .where(Campaign.id == bindparam("campaign_id"))
    .values(opens=Campaign.opens + bindparam("n"))
)


def record_opens(session: Session, tokens: list[str]) -> int:
    """Mark these sends opened (first open only) and count each once on its campaign."""
    connection = session.connection()
    now = utcnow()
    per_campaign: Counter[object] = Counter()
    for start in range(0, len(tokens), _CHUNK):
        chunk = tokens[start : start + _CHUNK]
        result = connection.execute(_MARK_OPENED, {"tokens": chunk, "now": now})
        per_campaign.update(row[0] for row in result.all())
    for campaign_id, n in per_campaign.items():
        connection.execute(_COUNT_OPENS, {"campaign_id": campaign_id, "n": n})
    return sum(per_campaign.values())


def open_recorder(runtime: Runtime, interval: float) -> HitRecorder[str]:
    """The pixel's recorder: its hits are the sends' tokens."""
    return HitRecorder(runtime, record_opens, "opens", interval)
