"""The reliability suites print what they did (seed, kills, faults, outcome) at the end of
the run, pass or fail, so CI logs carry the figures: a test appends its line to REPORTS, and
the line goes out in the test's report (tests/conftest.py's ``figures``), which also brings
it back from an xdist worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

REPORTS: list[str] = []


@pytest.fixture(autouse=True)
def _report_figures(figures: Callable[[str], None]) -> Iterator[None]:
    yield
    while REPORTS:
        figures(REPORTS.pop(0))
