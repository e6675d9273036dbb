"""Fixtures for the bounce tests: real SMTP servers on loopback, Herald's bounce receiver
on a free port, a private Dovecot with a test CA, and a clean queue."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from herald.bounces.receiver import InboundThread
from herald.runtime import Runtime
from tests.bounces import dovecot
from tests.bounces.certs import Issued, make_ca, trust
from tests.bounces.imap_mail import PASSWORD, USER
from tests.conftest import free_port, make_settings
from tests.installed import require
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


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def imap_server(ca: Issued) -> Iterator[dovecot.Dovecot]:
    require(dovecot.DOVECOT, "apt-get install dovecot-imapd (the service stays off)")
    server = dovecot.start(ca, {USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture
def ca_file(ca: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return trust(ca, tmp_path, monkeypatch)


@pytest.fixture
def mailbox(imap_server: dovecot.Dovecot, ca_file: Path) -> Iterator[IMAPClient]:
    """The test's own look into the mailbox (as its owner would), emptied for each test."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with IMAPClient("127.0.0.1", imap_server.imaps_port, ssl_context=context) as client:
        client.login(USER, PASSWORD)
        for folder in ("INBOX", "Herald/Processed"):
            if client.folder_exists(folder):
                client.select_folder(folder)
                client.delete_messages(client.search())
                client.expunge()
        yield client
