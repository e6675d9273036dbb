"""What a running Herald process holds: settings, the engine and the session factory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from herald.db import make_engine, make_session_factory, unit_of_work
from herald.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    is_durable: bool = False  # every commit reaches the disk before it returns
    _durable: Runtime | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, durable: bool = False) -> Runtime:
        """``durable``: see herald.db.make_engine."""
        engine = make_engine(settings.database_url, durable=durable)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            is_durable=durable or engine.dialect.name != "sqlite",
        )

    def durable(self) -> Runtime:
        """The runtime for the writes whose answer promises they are on disk (a webhook's
        200, a report moved out of its mailbox): this one when its commits are durable
        already (PostgreSQL's always are), else a durable engine, made once."""
        if self.is_durable:
            return self
        if self._durable is None:
            self._durable = Runtime.from_settings(self.settings, durable=True)
        return self._durable

    def dispose(self) -> None:
        self.engine.dispose()
        if self._durable is not None:
            self._durable.engine.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_settings_dep(request: Request) -> Settings:
    return get_runtime(request).settings


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back on error.

    Requests that may write (anything but GET/HEAD/OPTIONS) start as writers.
    """
    with unit_of_work(
        get_runtime(request).sessions, write=request.method not in READ_METHODS
    ) as session:
        yield session
