"""Fixtures for the marketing tests: real SMTP servers on loopback, a clean queue, and a
logged-in ADMIN of a fresh org."""

from collections.abc import Iterator

import pytest

from tests.marketing.factories import caller, retire_queue
from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Every test here starts after the previous one's queue was retired."""


@pytest.fixture(autouse=True)
def _retire_queue(runtime) -> Iterator[None]:
    """The QUEUED sends of orgs made by the factories are failed after each test."""
    yield
    retire_queue(runtime)


@pytest.fixture
def admin(client, runtime):
    return caller(client, runtime)
