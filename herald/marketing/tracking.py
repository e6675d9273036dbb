"""Open tracking and unsubscribes by token, the public side of every message.

Opens are buffered in memory and written in batches, so a flood of pixel requests costs
one UPDATE per flush instead of one write transaction per request. A unique open is
counted once: only a send whose ``opened_at`` is still empty is counted. One-click
unsubscribes are in ``herald.marketing.oneclick``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.db import unit_of_work, utcnow
from herald.log import get_logger
from herald.marketing.models import Campaign, MarketingSend, SendStatus
from herald.orgs.models import Org
from herald.runtime import Runtime

log = get_logger("herald.tracking")

TOKEN_PATTERN = re.compile(r"^[0-9a-f]{64}$")
FLUSH_SIZE = 5000
MAX_PENDING = 200_000


def well_formed(token: str) -> bool:
    return bool(TOKEN_PATTERN.match(token))


def record_opens(session: Session, tokens: list[str]) -> int:
    """Mark these sends opened (first open only) and count each once on its campaign."""
    now = utcnow()
    per_campaign: Counter[object] = Counter()
    for start in range(0, len(tokens), 500):
        result = session.execute(
            update(MarketingSend)
            .where(
                MarketingSend.token.in_(tokens[start : start + 500]),
                MarketingSend.opened_at.is_(None),
                # an open is counted against a delivery, so the open rate stays within 0..1
                MarketingSend.status == SendStatus.DELIVERED.value,
            )
            .values(opened_at=now)
            .returning(MarketingSend.campaign_id)
            .execution_options(synchronize_session=False)
        )
        per_campaign.update(row[0] for row in result.all())
    for campaign_id, n in per_campaign.items():
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(opens=Campaign.opens + n)
            .execution_options(synchronize_session=False)
        )
    return sum(per_campaign.values())


class OpenRecorder:
    """Collects pixel hits and flushes them every ``interval`` seconds from one task."""

    def __init__(self, runtime: Runtime, interval: float = 1.0) -> None:
        self.runtime = runtime
        self.interval = interval
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def hit(self, token: str) -> None:
        if len(self._pending) >= MAX_PENDING:  # the database is away: drop, don't grow
            return
        self._pending.add(token)
        if len(self._pending) >= FLUSH_SIZE:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        tokens, self._pending = sorted(self._pending), set()

        def write() -> int:
            with unit_of_work(self.runtime.sessions) as session:
                return record_opens(session, tokens)

        try:
            counted = await asyncio.to_thread(write)
        except SQLAlchemyError as exc:  # keep the hits for the next flush
            self._pending.update(tokens)
            log.error("opens.flush_failed", error=type(exc).__name__, pending=len(self._pending))
            return
        log.debug("opens.flushed", hits=len(tokens), counted=counted)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "your address"


def find_send(session: Session, token: str) -> tuple[MarketingSend, str] | None:
    if not well_formed(token):
        return None
    row = session.execute(
        select(MarketingSend, Org.name)
        .join(Org, Org.id == MarketingSend.org_id)
        .where(MarketingSend.token == token)
    ).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class Unsubscribed:
    """What the confirmation page shows: whose list, and a hint of the address."""

    org_name: str
    email: str
