"""Open tracking and unsubscribes by token, the public side of every message.

Opens are buffered in memory and written in batches, so a flood of pixel requests costs
one UPDATE per flush instead of one write transaction per request. A unique open is
counted once: only a send whose ``opened_at`` is still empty is counted. One-click
unsubscribes are written in batches too, but each request waits for its batch's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Uuid, any_, bindparam, func, select, true, tuple_, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement

from herald.crm.models import Contact
from herald.db import UTCDateTime, driver_write_transaction, unit_of_work, utcnow
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


def _one_of(tokens: BindParameter[Any], dialect: Dialect) -> ColumnElement[bool]:
    """``token IN (the batch's tokens)``, the list passed as one parameter, so a statement
    is rendered once whatever the batch size: a JSON array on SQLite, an array on
    PostgreSQL. The one place the two databases differ in these statements."""
    if dialect.name == "sqlite":
        return MarketingSend.token.in_(select(func.json_each(tokens).table_valued("value").c.value))
    return MarketingSend.token == any_(tokens)


def _token_list(tokens: list[str], dialect: Dialect) -> object:
    return json.dumps(tokens) if dialect.name == "sqlite" else tokens


class _Rendered:
    """A statement rendered once for a dialect, run on a DBAPI cursor: a flood of one-click
    requests runs it many times a second, and SQLAlchemy's execution (cache key, result
    wrapping, one bound value per token) cost several times what the database takes."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.order = compiled.positiontup  # None when the driver takes named parameters

    def run(self, cursor: DBAPICursor, values: dict[str, object]) -> list[Any]:
        cursor.execute(self.sql, values if self.order is None else [values[k] for k in self.order])
        return list(cursor.fetchall()) if cursor.description else []


class _OneClickStatements:
    """The statements of a batch, rendered for the engine's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        tokens: BindParameter[Any] = bindparam("tokens")
        self.dialect = dialect
        self.now = UTCDateTime().bind_processor(dialect) or (lambda value: value)
        self.campaign_id = Uuid().result_processor(dialect, None) or (lambda value: value)
        self.look_up = _Rendered(
            select(
                MarketingSend.token,
                MarketingSend.email,
                Org.name,
                MarketingSend.unsubscribed_at.is_(None),
                # no contact any more (deleted): nothing to opt out
                func.coalesce(Contact.marketing_opt_out, true()),
            )
            .join(Org, Org.id == MarketingSend.org_id)
            .outerjoin(
                Contact,
                (Contact.id == MarketingSend.contact_id) & (Contact.org_id == MarketingSend.org_id),
            )
            .where(_one_of(tokens, dialect)),
            dialect,
        )
        self.mark_unsubscribed = _Rendered(
            update(MarketingSend)
            .where(_one_of(tokens, dialect), MarketingSend.unsubscribed_at.is_(None))
            .values(unsubscribed_at=bindparam("now"))
            .returning(MarketingSend.id, MarketingSend.campaign_id),
            dialect,
        )
        # (id, org_id) together: the contact of the send, in the send's org. SQLite finds
        # each by its primary key (with ``org_id = ?`` apart, it would scan the org's index).
        self.opt_out_contacts = _Rendered(
            update(Contact)
            .where(
                tuple_(Contact.id, Contact.org_id).in_(
                    select(MarketingSend.contact_id, MarketingSend.org_id).where(
                        _one_of(tokens, dialect)
                    )
                ),
                Contact.marketing_opt_out.is_(False),
            )
            .values(marketing_opt_out=true(), updated_at=bindparam("now")),
            dialect,
        )


def unsubscribe_tokens(
    engine: Engine, connection: PoolProxiedConnection, sql: _OneClickStatements, tokens: list[str]
) -> dict[str, Unsubscribed]:
    """Opt the contacts of these sends out for good; repeating it changes nothing more.

    Returns the known tokens; an unknown one is left out and changes nothing. One read,
    then, only when something is left to change, one write transaction of two statements.
    The read is outside it: a repeat writes nothing and waits for no writer, and the writes
    change only what is still to change when they run.
    """
    cursor = connection.cursor()
    try:
        rows = sql.look_up.run(cursor, {"tokens": _token_list(tokens, sql.dialect)})
        connection.commit()  # the read's own transaction (PostgreSQL), before any write
        unmarked = [row[0] for row in rows if row[3]]
        opted_in = [row[0] for row in rows if not row[4]]
        if unmarked or opted_in:
            now = sql.now(utcnow())
            with driver_write_transaction(engine, connection):
                if unmarked:
                    values = {"tokens": _token_list(unmarked, sql.dialect), "now": now}
                    if marked := sql.mark_unsubscribed.run(cursor, values):
                        # one line per batch: under a flood, a line per send cost a fifth of
                        # the request
                        log.info(
                            "contacts.unsubscribed",
                            count=len(marked),
                            send_ids=[row[0] for row in marked],
                            campaign_ids=sorted({str(sql.campaign_id(row[1])) for row in marked}),
                        )
                if opted_in:
                    values = {"tokens": _token_list(opted_in, sql.dialect), "now": now}
                    sql.opt_out_contacts.run(cursor, values)
    finally:
        cursor.close()
    return {row[0]: Unsubscribed(row[2], row[1]) for row in rows}


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
        self._statements: _OneClickStatements | None = None

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
        engine = self.runtime.engine
        connection = engine.raw_connection()  # connects first, so the dialect knows its server
        try:
            if self._statements is None:
                self._statements = _OneClickStatements(engine.dialect)
            return unsubscribe_tokens(engine, connection, self._statements, tokens)
        finally:
            connection.close()
