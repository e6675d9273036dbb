"""The reliability suites print what they did (seed, kills, faults, outcome) at the end of
the run, pass or fail, so CI logs carry the figures."""

from __future__ import annotations

from typing import Any

REPORTS: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORTS:
        terminalreporter.section("reliability figures")
        for line in REPORTS:
            terminalreporter.write_line(line)
