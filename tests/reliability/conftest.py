"""The reliability suites print what they did (seed, kills, faults, outcome) at the end of
the run, pass or fail, so CI logs carry the figures: a test appends its line to REPORTS, and
the line goes out in the test's report (tests/conftest.py's ``figures``), which also brings
it back from an xdist worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from herald.runtime import Runtime
from tests.marketing.engine import fast_runtime
from tests.reliability.fleet import WorkerFleet
from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server

REPORTS: list[str] = []


@pytest.fixture(autouse=True)
def _report_figures(figures: Callable[[str], None]) -> Iterator[None]:
    yield
    while REPORTS:
        figures(REPORTS.pop(0))


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Sends a test leaves queued (a paused campaign) never reach the next test's workers."""


@pytest.fixture(scope="module")
def engine(runtime: Runtime) -> Runtime:
    """The test database with quick timings, shared by a module's tests and its workers."""
    return fast_runtime(runtime, lease_seconds=3)


@pytest.fixture(scope="module")
def fleet(engine: Runtime) -> Iterator[WorkerFleet]:
    """Three `herald worker` processes kept for a module's tests (started once: a process
    takes seconds to start on a busy machine); a test may kill some, the fleet replaces them."""
    workers = WorkerFleet(engine, 3, concurrency=4)
    workers.wait_ready()
    yield workers
    workers.stop()


@pytest.fixture
def workers(fleet: WorkerFleet) -> WorkerFleet:
    """The module's fleet, alive and ready (a test before may have killed some)."""
    assert not fleet.crashed(), fleet.crashed()
    fleet.wait_ready()
    return fleet
