"""One-click unsubscribes (RFC 8058 and the page's own form), written in batches.

A flood of POSTs costs one transaction per batch rather than one per request, and each
request still waits for its batch's commit, so its 200 means the contact is opted out.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any, cast

import psycopg
from sqlalchemy import Uuid, any_, bindparam, func, select, true, tuple_, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement

from herald.crm.models import Contact
from herald.db import UTCDateTime, WriterBusy, driver_write_transaction, is_busy, utcnow
from herald.log import get_logger
from herald.marketing.models import MarketingSend
from herald.marketing.tracking import Unsubscribed
from herald.orgs.models import Org
from herald.runtime import Runtime

log = get_logger("herald.tracking")


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
    """The statements of a batch, rendered for the engine's dialect.

    SQLite: a read, then, only when something is left to change, a write transaction of two
    statements. The read is outside it: a repeat waits for no writer. PostgreSQL, which has
    no single writer to wait for: the same three in one statement (data-modifying WITH
    queries), a single round trip.
    """

    def __init__(self, dialect: Dialect) -> None:
        tokens: BindParameter[Any] = bindparam("tokens")
        self.dialect = dialect
        self.now = UTCDateTime().bind_processor(dialect) or (lambda value: value)
        self.campaign_id = Uuid().result_processor(dialect, None) or (lambda value: value)
        mark_unsubscribed = (
            update(MarketingSend)
            .where(_one_of(tokens, dialect), MarketingSend.unsubscribed_at.is_(None))
            .values(unsubscribed_at=bindparam("now"))
            .returning(MarketingSend.id, MarketingSend.campaign_id)
        )
        # (id, org_id) together: the contact of the send, in the send's org
        opt_out_contacts = (
            update(Contact)
            .where(
                tuple_(Contact.id, Contact.org_id).in_(
                    select(MarketingSend.contact_id, MarketingSend.org_id).where(
                        _one_of(tokens, dialect)
                    )
                ),
                Contact.marketing_opt_out.is_(False),
            )
            .values(marketing_opt_out=true(), updated_at=bindparam("now"))
        )
        found = (
            select(MarketingSend.token, MarketingSend.email, Org.name)
            .join(Org, Org.id == MarketingSend.org_id)
            .where(_one_of(tokens, dialect))
        )
        self.in_one: _Rendered | None = None
        if dialect.name != "sqlite":
            # (token, email, org name, id and campaign id when this statement marked it)
            marked = mark_unsubscribed.cte("marked")
            self.in_one = _Rendered(
                found.add_columns(marked.c.id, marked.c.campaign_id)
                .outerjoin(marked, marked.c.id == MarketingSend.id)
                .add_cte(opt_out_contacts.cte("opted_out")),
                dialect,
            )
            return
        # SQLite: the read finds each send's contact in the send's org, and the opt-out
        # goes by those contacts' ids (by the tokens again, SQLite looked each up twice)
        self.look_up = _Rendered(
            found.add_columns(
                MarketingSend.unsubscribed_at.is_(None),
                # no contact any more (deleted): nothing to opt out
                func.coalesce(Contact.marketing_opt_out, true()),
                Contact.id,
            ).outerjoin(
                Contact,
                (Contact.id == MarketingSend.contact_id) & (Contact.org_id == MarketingSend.org_id),
            ),
            dialect,
        )
        self.mark_unsubscribed = _Rendered(mark_unsubscribed, dialect)
        contact_ids: BindParameter[Any] = bindparam("contact_ids")
        self.opt_out_contacts = _Rendered(
            update(Contact)
            .where(
                Contact.id.in_(select(func.json_each(contact_ids).table_valued("value").c.value)),
                Contact.marketing_opt_out.is_(False),
            )
            .values(marketing_opt_out=true(), updated_at=bindparam("now")),
            dialect,
        )

    def in_one_values(self, tokens: list[str]) -> dict[str, object]:
        return {"tokens": tokens, "now": self.now(utcnow())}

    def in_one_result(self, rows: list[Any]) -> dict[str, Unsubscribed]:
        _log_marked(self, [row[3:5] for row in rows if row[3] is not None])
        return {row[0]: Unsubscribed(row[2], row[1]) for row in rows}


def unsubscribe_tokens(
    engine: Engine,
    connection: PoolProxiedConnection,
    sql: _OneClickStatements,
    tokens: list[str],
    wait: bool = True,
) -> dict[str, Unsubscribed]:
    """Opt the contacts of these sends out for good; repeating it changes nothing more.

    Returns the known tokens; an unknown one is left out and changes nothing. The writes
    change only what is still to change when they run (``unsubscribed_at IS NULL``, not
    yet opted out), so two batches holding one token mark it once.
    """
    cursor = connection.cursor()
    try:
        if sql.in_one is not None:
            rows = sql.in_one.run(cursor, sql.in_one_values(tokens))
            connection.commit()
            return sql.in_one_result(rows)
        rows = sql.look_up.run(cursor, {"tokens": _token_list(tokens, sql.dialect)})
        connection.commit()  # the read's own transaction, before any write
        unmarked = [row[0] for row in rows if row[3]]
        opted_in = [row[5] for row in rows if not row[4]]  # their contacts' ids, as stored
        if unmarked or opted_in:
            now = sql.now(utcnow())
            marked = []
            with driver_write_transaction(engine, connection, wait):
                if unmarked:
                    values = {"tokens": _token_list(unmarked, sql.dialect), "now": now}
                    marked = sql.mark_unsubscribed.run(cursor, values)
                if opted_in:
                    values = {"contact_ids": json.dumps(opted_in), "now": now}
                    sql.opt_out_contacts.run(cursor, values)
            _log_marked(sql, marked)  # committed
    finally:
        cursor.close()
    return {row[0]: Unsubscribed(row[2], row[1]) for row in rows}


def _log_marked(sql: _OneClickStatements, marked: list[Any]) -> None:
    """One line per batch for the sends it marked, (id, campaign id) each: under a flood,
    a line per send cost a fifth of the request."""
    if marked:
        log.info(
            "contacts.unsubscribed",
            count=len(marked),
            send_ids=[row[0] for row in marked],
            campaign_ids=sorted(str(sql.campaign_id(c)) for c in {row[1] for row in marked}),
        )


class Unsubscriber:
    """Applies one-click unsubscribes in batches (group commit).

    A request waits for the commit of the batch that holds it, so its 200 still means the
    contact is opted out. While one batch is being written, the requests that arrive wait
    and go together in the next one: a flood costs one transaction per batch instead of one
    per request, and a lone request is written at once.

    No batch goes through a thread when it can help it: a database thread competing with
    the event loop for the interpreter took five times as long as alone. On SQLite a batch
    runs on the loop's own thread, on a connection kept for it whose busy timeout is 0: its
    statements read and write a few pages, mostly cached. It never waits there: when
    another writer has the lock, the batch goes to a thread that waits its turn like any
    other writer. Nor does it checkpoint there (copying the log back into the database
    writes megabytes and syncs the file): that connection's automatic checkpoint is off, and
    a thread checkpoints after every ``CHECKPOINT_TOKENS`` tokens written on the loop.
    On PostgreSQL a batch is one statement on an asyncio connection kept for it
    (autocommit: the statement is its own transaction); the loop awaits the server.
    """

    BATCH = 500
    CHECKPOINT_TOKENS = 1000

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiting: list[tuple[str, asyncio.Future[Unsubscribed | None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._statements: _OneClickStatements | None = None
        self._here: PoolProxiedConnection | None = None  # SQLite
        self._remote: psycopg.AsyncConnection[Any] | None = None  # PostgreSQL
        self._since_checkpoint = 0  # tokens written on the loop's thread (SQLite)
        self._checkpoint: asyncio.Task[None] | None = None

    async def unsubscribe(self, token: str) -> Unsubscribed | None:
        """The page's details for a known token (now opted out), None for an unknown one."""
        future: asyncio.Future[Unsubscribed | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((token, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def close(self) -> None:
        """Let the kept connections go, after the batch being written (a later batch opens
        new ones)."""
        for task in (self._writer, self._checkpoint):
            if task is not None:
                await asyncio.wait([task])
        self._close_here()
        await self._close_remote()

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.BATCH], self._waiting[self.BATCH :]
                tokens = sorted({token for token, _ in batch})
                try:
                    found = await self._apply(tokens)
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

    async def _apply(self, tokens: list[str]) -> dict[str, Unsubscribed]:
        engine = self.runtime.engine
        if engine.dialect.name != "sqlite":
            return await self._write_remote(tokens)
        found = self._write_here(tokens)
        if found is None:
            return await asyncio.to_thread(self._write, tokens)
        self._since_checkpoint += len(tokens)
        if self._since_checkpoint >= self.CHECKPOINT_TOKENS and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.create_task(self._checkpoint_elsewhere())
        return found

    async def _checkpoint_elsewhere(self) -> None:
        """SQLite: the log copied back into the database on a thread (PASSIVE: it takes no
        lock and waits for nobody; what a reader still needs stays for the next one)."""

        def checkpoint() -> None:
            connection = self.runtime.engine.raw_connection()
            try:
                connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()

        try:
            await asyncio.to_thread(checkpoint)
        except Exception as exc:  # the other writers' automatic checkpoints still run
            log.warning("unsubscribes.checkpoint_failed", error=type(exc).__name__)
        finally:
            self._checkpoint = None

    def _write_here(self, tokens: list[str]) -> dict[str, Unsubscribed] | None:
        """SQLite: the batch on this thread, or None when another writer holds the lock
        (nothing was changed)."""
        engine = self.runtime.engine
        if self._here is None:
            connection = engine.raw_connection()
            connection.detach()  # its busy timeout is its own: never back in the pool
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()
            self._here = connection
        try:
            return unsubscribe_tokens(
                engine, self._here, self._statements_for(engine), tokens, wait=False
            )
        except WriterBusy:
            return None
        except sqlite3.OperationalError as exc:
            if is_busy(exc):  # the read met a checkpoint's lock
                return None
            self._close_here()  # a fresh connection for the next batch
            raise

    def _close_here(self) -> None:
        if self._here is not None:
            here, self._here = self._here, None
            here.close()

    def _write(self, tokens: list[str]) -> dict[str, Unsubscribed]:
        """On a thread, waiting for the writer lock (SQLite)."""
        engine = self.runtime.engine
        connection = engine.raw_connection()
        try:
            return unsubscribe_tokens(engine, connection, self._statements_for(engine), tokens)
        finally:
            connection.close()

    async def _write_remote(self, tokens: list[str]) -> dict[str, Unsubscribed]:
        """PostgreSQL: the batch's one statement. A connection kept from an earlier batch
        may have been closed by the server since (a restart), or the statement failed on
        it for another passing reason (a deadlock, a timeout): one more try on a new one,
        harmless since the statement changes only what is left to change."""
        engine = self.runtime.engine
        if self._statements is None:  # the dialect learns its server on a first connection
            await asyncio.to_thread(lambda: engine.connect().close())
        sql = self._statements_for(engine)
        kept = self._remote is not None
        try:
            return await self._run_remote(sql, tokens)
        except psycopg.OperationalError:
            await self._close_remote()
            if not kept:
                raise
        return await self._run_remote(sql, tokens)

    async def _run_remote(
        self, sql: _OneClickStatements, tokens: list[str]
    ) -> dict[str, Unsubscribed]:
        assert sql.in_one is not None  # PostgreSQL's one statement
        if self._remote is None:
            url = self.runtime.engine.url.set(drivername="postgresql")
            self._remote = await psycopg.AsyncConnection.connect(
                url.render_as_string(hide_password=False),
                autocommit=True,
                application_name="herald one-click",
            )
        cursor = await self._remote.execute(sql.in_one.sql, sql.in_one_values(tokens))
        return sql.in_one_result(await cursor.fetchall())

    async def _close_remote(self) -> None:
        if self._remote is not None:
            remote, self._remote = self._remote, None
            await remote.close()

    def _statements_for(self, engine: Engine) -> _OneClickStatements:
        if self._statements is None:
            self._statements = _OneClickStatements(engine.dialect)
        return self._statements
