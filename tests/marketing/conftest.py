"""Fixtures for the marketing tests: real SMTP servers on loopback, and a clean queue."""

import pytest

from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Every test here starts after the previous one's queue was retired."""
