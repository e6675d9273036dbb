"""Shared fixtures: a real database (SQLite file, or PostgreSQL via HERALD_TEST_DATABASE_URL)
and the real app served over HTTP by uvicorn on a free loopback port."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.orm import Session

from herald import migrate
from herald.app import create_app
from herald.models import metadata
from herald.runtime import Runtime
from herald.settings import Settings

TEST_SECRET = "test-secret-key-for-herald-tests-only"


def pytest_report_header() -> str:
    url = os.environ.get("HERALD_TEST_DATABASE_URL")
    return f"herald database: {url or 'SQLite (temporary file)'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("HERALD_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald-test.db'}"


def reset_schema(runtime: Runtime) -> None:
    """An empty database, then the real migrations (as `herald db upgrade` runs them)."""
    with runtime.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(runtime.settings.database_url)


LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "base_url": "https://herald.test",
        "login_address_max_failures": 10_000,
        "log_level": "WARNING",
        # The tests' SMTP servers listen on loopback, which the egress rule refuses by default.
        "smtp_allowed_networks": LOOPBACK_NETWORKS,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.from_settings(settings)
    reset_schema(rt)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def db(runtime: Runtime) -> Iterator[Session]:
    """A session for arranging and checking data; commit what you arrange."""
    session = runtime.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


class LiveServer:
    def __init__(
        self, runtime: Runtime, port: int | None = None, embedded_worker: bool = False
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runtime=runtime, embedded_worker=embedded_worker),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    server = LiveServer(runtime).start()
    yield server
    server.stop()


@pytest.fixture
def start_server(database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Another app on its own port with overridden settings, sharing the test database."""
    started: list[tuple[LiveServer, Runtime]] = []

    def start(**overrides: object) -> LiveServer:
        url = str(overrides.pop("database_url", database_url))
        rt = Runtime.from_settings(make_settings(url, **overrides))
        server = LiveServer(rt).start()
        started.append((server, rt))
        return server

    yield start
    for server, rt in started:
        server.stop()
        rt.engine.dispose()


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_queue(runtime: Runtime) -> Iterator[None]:
    """Sends a test leaves QUEUED (or in flight) are retired afterwards, so that no later
    test's worker picks them up. Autouse in the suites that create sends."""
    yield
    from sqlalchemy import update

    from herald.db import unit_of_work
    from herald.marketing.models import MarketingSend

    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.status.in_(["QUEUED", "SENDING"]))
            .values(status="FAILED", error="Retired by the test that made it.", lease_owner=None)
        )
