"""Open tracking and unsubscribes by token, the public side of every message.

Opens are buffered in memory and written in batches, so a flood of pixel requests costs
one UPDATE per flush instead of one write transaction per request. A unique open is
counted once: only a send whose ``opened_at`` is still empty is counted. One-click
unsubscribes are written in batches too, but each request waits for its batch's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.crm.models import Contact
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


# Built once: a flood of one-click requests runs these many times a second, and building
# and cache-keying a statement costs more than SQLite takes to run it.
_LOOK_UP = (
    select(
        MarketingSend.token,
        MarketingSend.email,
        Org.name,
        MarketingSend.unsubscribed_at.is_(None),
        # no contact any more (deleted): nothing to opt out
        func.coalesce(Contact.marketing_opt_out, True),
    )
    .join(Org, Org.id == MarketingSend.org_id)
    .outerjoin(
        Contact, (Contact.id == MarketingSend.contact_id) & (Contact.org_id == MarketingSend.org_id)
    )
    .where(MarketingSend.token.in_(bindparam("tokens", expanding=True)))
)
_MARK_UNSUBSCRIBED = (
    update(MarketingSend)
    .where(
        MarketingSend.token.in_(bindparam("tokens", expanding=True)),
        MarketingSend.unsubscribed_at.is_(None),
    )
    .values(unsubscribed_at=bindparam("now"))
    .returning(MarketingSend.id, MarketingSend.campaign_id)
)
# (id, org_id) together: the contact of the send, in the send's org. SQLite finds each by
# its primary key (with ``org_id = ?`` apart, it would scan the org's index).
_OPT_OUT_CONTACTS = (
    update(Contact)
    .where(
        tuple_(Contact.id, Contact.org_id).in_(
            select(MarketingSend.contact_id, MarketingSend.org_id).where(
                MarketingSend.token.in_(bindparam("tokens", expanding=True))
            )
        ),
        Contact.marketing_opt_out.is_(False),
    )
    .values(marketing_opt_out=True, updated_at=bindparam("now"))
)


def unsubscribe_tokens(session: Session, tokens: list[str]) -> dict[str, Unsubscribed]:
    """Opt the contacts of these sends out for good; repeating it changes nothing more.

    Returns the known tokens; an unknown one is left out and changes nothing. One read, then
    at most two writes whatever the number of tokens (none when nothing is left to change).
    """
    connection = session.connection()
    found: dict[str, Unsubscribed] = {}
    for start in range(0, len(tokens), 500):
        rows = connection.execute(_LOOK_UP, {"tokens": tokens[start : start + 500]}).all()
        now = utcnow()
        if unmarked := [row[0] for row in rows if row[3]]:
            newly = connection.execute(_MARK_UNSUBSCRIBED, {"tokens": unmarked, "now": now})
            for send_id, campaign_id in newly.all():
                log.info("contact.unsubscribed", send_id=send_id, campaign_id=str(campaign_id))
        if opted_in := [row[0] for row in rows if not row[4]]:
            connection.execute(_OPT_OUT_CONTACTS, {"tokens": opted_in, "now": now})
        found.update((row[0], Unsubscribed(row[2], row[1])) for row in rows)
    return found


class Unsubscriber:
    """Applies one-click unsubscribes in batches (group commit).

    A request waits for the commit of the batch that holds it, so its 200 still means the
    contact is opted out. While one batch is being written, the requests that arrive wait
    and go together in the next one: a flood costs one transaction per batch instead of one
    per request, and a lone request is written at once.
    """

    BATCH = 500

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiting: list[tuple[str, asyncio.Future[Unsubscribed | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def unsubscribe(self, token: str) -> Unsubscribed | None:
        """The page's details for a known token (now opted out), None for an unknown one."""
        future: asyncio.Future[Unsubscribed | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((token, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.BATCH], self._waiting[self.BATCH :]
                tokens = sorted({token for token, _ in batch})
                try:
                    found = await asyncio.to_thread(self._write, tokens)
                except Exception as exc:  # not hidden: each waiting request raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for token, future in batch:
                    if not future.done():
                        future.set_result(found.get(token))
        finally:
            self._writer = None

    def _write(self, tokens: list[str]) -> dict[str, Unsubscribed]:
        with unit_of_work(self.runtime.sessions) as session:
            return unsubscribe_tokens(session, tokens)
