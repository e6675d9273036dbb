"""Engine and session factory, SQLite pragmas, the naming convention and shared column types."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Select,
    TypeDecorator,
    Uuid,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
    sessionmaker,
)

from herald import checkpoint, writelock
from herald.errors import HeraldError

Stmt = TypeVar("Stmt", bound=Select)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def db_now(session: Session) -> dt.datetime:
    """The time leases are measured in. PostgreSQL's clock, so that workers on machines
    whose clocks disagree still agree on whose lease has run out; SQLite's workers share
    one machine and its clock.

    PostgreSQL's ``now()`` is the start of the transaction, so it is asked once per unit of
    work (each has its own session) instead of once per step of a chunk."""
    if session.get_bind().dialect.name == "postgresql":
        transaction = session.get_transaction()
        cached = session.info.get("db_now")
        if transaction is not None and cached and cached[0] is transaction:
            return cached[1]
        value = session.scalar(select(func.now()))
        assert isinstance(value, dt.datetime)
        value = value.astimezone(dt.UTC)
        session.info["db_now"] = (session.get_transaction(), value)
        return value
    return utcnow()


def lock_skip_locked(stmt: Stmt, session: Session) -> Stmt:
    """PostgreSQL: rows another worker (or process) is claiming are skipped, not waited for.

    SQLite needs nothing: the caller's BEGIN IMMEDIATE already made this worker the only writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores UTC; always hands back timezone-aware UTC datetimes, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def big_int_id() -> BigInteger:
    """A 64-bit integer key on PostgreSQL; on SQLite INTEGER, the rowid's own alias."""
    return BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrgScoped:
    """A tenant row: every query on it goes through an org-scoped repository."""

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "NORMAL") -> None:
    # Let SQLAlchemy's transaction handling issue BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def _sqlite_durable_pragmas(dbapi_connection: Any, record: Any) -> None:
    # FULL: each commit is on disk (fsync of the WAL) before COMMIT returns, power loss
    # included; NORMAL survives a crash of the process, not of the machine.
    _sqlite_pragmas(dbapi_connection, record, synchronous="FULL")


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "BEGIN")
    conn.exec_driver_sql(mode)


def make_engine(url: str, *, durable: bool = False, **kwargs: Any) -> Engine:
    """``durable``: every commit reaches the disk before it returns, also on SQLite (whose
    default here trades that for speed); for writers whose answer promises it (the bounce
    receiver's 250). PostgreSQL commits durably anyway."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_durable_pragmas if durable else _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        if path and path != ":memory:" and not path.startswith("file:"):
            writelock.register(engine, path, SQLITE_BUSY_TIMEOUT_MS / 1000)
            checkpoint.register(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer.

    On SQLite a deferred transaction that reads and then writes fails with "database is
    locked" when another writer got in between; taking the write lock up front (BEGIN
    IMMEDIATE) makes it wait its turn instead. PostgreSQL needs nothing.
    """
    if session.get_bind().dialect.name != "sqlite" or session.in_transaction():
        return
    # Queue behind Herald's other writers first; the lock goes with this transaction and is
    # let go when it ends (see _let_writer_go), even if the session lives on.
    lock = _writer_turn(session.get_bind())  # type: ignore[arg-type]
    if lock is not None:
        session.info[_WRITER_LOCK] = lock
    try:
        session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
    except BaseException:
        held = session.info.pop(_WRITER_LOCK, None)
        if held is not None:
            held.release()
        raise


def _writer_turn(engine: Engine) -> writelock.WriterLock | None:
    """Wait for Herald's SQLite writer lock: the lock, now held, or None (not SQLite, or
    the wait ran out and SQLite's own busy timeout takes over)."""
    lock = writelock.writer_lock(engine)
    return lock if lock is not None and lock.acquire() else None


_WRITER_LOCK = "herald.writer_lock"


@event.listens_for(Session, "after_transaction_end")
def _let_writer_go(session: Session, transaction: SessionTransaction) -> None:
    """After the COMMIT or ROLLBACK of a writer's transaction, the next writer's turn."""
    if transaction.parent is None:
        lock = session.info.pop(_WRITER_LOCK, None)
        if lock is not None:
            lock.release()


@contextmanager
def unit_of_work(factory: sessionmaker[Session], write: bool = True) -> Iterator[Session]:
    """Commit at the edge: commit when the block ends cleanly, roll back otherwise."""
    session = factory()
    if write:
        begin_write(session)
    try:
        yield session
        session.commit()
    except HeraldError as exc:
        if exc.keep_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
