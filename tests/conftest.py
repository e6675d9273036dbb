"""Shared fixtures: a real database (SQLite file, or PostgreSQL via HERALD_TEST_DATABASE_URL)
and the real app served over HTTP by uvicorn on a free loopback port.

The suite runs in parallel: `make test` starts several pytest-xdist worker processes, each
with a database of its own (``database_url``), and sends each test file whole to one of them
(``--dist loadfile``). A test stays parallel-safe when it keeps to these rules:

- Ports: only ``free_port()`` (tests/ports.py), never a fixed number, also for the servers a
  test writes into a config file (Postfix, Dovecot, a PostgreSQL of its own). The port is
  claimed against every other test process on the machine until this process ends.
- Files: only under ``tmp_path`` / ``tmp_path_factory`` (per worker) or a ``tempfile.mkdtemp``
  of the test's own; never ./data, the repo, /tmp/<fixed name> or the system's config
  (/etc/postfix, /etc/dovecot). Subprocesses get ``cwd=tmp_path``.
- Databases: the session's (``runtime``, ``database_url``) belongs to this worker; another
  one is made per test from it (``own_database``), with a unique name.
- Environment: settings go to ``make_settings(...)``, and to a subprocess through its own
  ``env=``; os.environ only through ``monkeypatch`` (undone after the test; every worker is
  a process of its own, so this never reaches another worker).
- Processes: a server or daemon the test starts is private (its own config, queue, data and
  PID files under a temp dir of its own, loopback only, e.g. ``postfix -c DIR``, ``dovecot
  -c FILE``) and stopped through that config or by its PID; never a system service, never
  ``pkill``/``killall`` by name (another worker runs the same programs).
- Order: tests of one file run in order in one process; nothing may depend on another file
  having run first (nor on being alone: the machine is busy, so wait on a condition, with a
  generous deadline, rather than sleeping a fixed time and asserting).
- Output for the CI log goes through the ``figures`` fixture: a worker's prints are not shown.
- A file that takes long (tens of seconds: processes, servers, big data) is marked
  ``pytestmark = pytest.mark.slow``, so the parallel run starts it first.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from herald import migrate
from herald.app import create_app
from herald.auth import passwords
from herald.models import metadata
from herald.runtime import Runtime
from herald.settings import Settings
from tests.ports import free_port

TEST_SECRET = "test-secret-key-for-herald-tests-only"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files marked ``slow`` first: the parallel run (``--dist loadfile
    --no-loadscope-reorder``) hands files out in this order, so a long file starts early
    instead of being the one everybody waits for at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_report_header() -> str:
    url = os.environ.get("HERALD_TEST_DATABASE_URL")
    return f"herald database: {url or 'SQLite (temporary file)'}"


FIGURES = "herald_figures"
_figures: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """A line of figures for the CI log (a seed, counts, timings), printed at the end of the
    run, pass or fail. It travels in the test's report, so it shows from an xdist worker too
    (where printing would be lost); the JUnit report carries it as a property."""

    def add(line: str) -> None:
        request.node.user_properties.append((FIGURES, line))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        _figures.extend(value for name, value in report.user_properties if name == FIGURES)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _figures:
        terminalreporter.section("figures")
        for line in _figures:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """This test process's own database: a SQLite file in its temp dir, or on PostgreSQL the
    database of HERALD_TEST_DATABASE_URL itself, or for an xdist worker one made from it
    (``herald_test_gw0``, ...), so that workers never see each other's rows."""
    url = os.environ.get("HERALD_TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald-test.db'}"
    elif worker_id == "master":
        yield url
    else:
        with own_database(url, f"{make_url(url).database}_{worker_id}") as worker_url:
            yield worker_url


@contextmanager
def own_database(url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database ``name`` on the server of ``url`` (one a crashed run
    left is dropped first), dropped again afterwards."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    drop = text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    with admin.connect() as conn:
        conn.execute(drop)
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(drop)
        admin.dispose()


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


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """The users the tests make get argon2id hashes at the lowest cost. At the production
    cost every hash and every login verification takes ~0.17 s of CPU, which made up a large
    share of the suite's time. The code paths are unchanged: a hash carries its own cost, and
    verifying reads it from there. (The unknown-email dummy hash keeps the production cost; a
    test that needs real-cost hashes uses ``production_password_hashes``.)"""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        )
        yield


@pytest.fixture
def production_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users made in this test get hashes at the production cost (timing comparisons)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())


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
