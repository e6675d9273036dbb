"""Fixtures for the bounce tests: real SMTP servers on loopback, Herald's bounce receiver
on a free port, and a clean queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from herald.bounces.receiver import InboundThread
from herald.runtime import Runtime
from tests.conftest import free_port, make_settings
from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Every test here starts after the previous one's queue was retired."""


@pytest.fixture
def inbound(database_url: str) -> Iterator[InboundThread]:
    """`herald inbound`'s receiver, on its own durable engine as the command runs it."""
    runtime = Runtime.from_settings(make_settings(database_url), durable=True)
    receiver = InboundThread(runtime, port=free_port())
    receiver.start()
    yield receiver
    receiver.stop()
    runtime.engine.dispose()
