"""What a running Herald process holds: settings, the engine and the session factory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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

    @classmethod
    def from_settings(cls, settings: Settings, *, durable: bool = False) -> Runtime:
        """``durable``: see herald.db.make_engine."""
        engine = make_engine(settings.database_url, durable=durable)
        return cls(settings=settings, engine=engine, sessions=make_session_factory(engine))


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
