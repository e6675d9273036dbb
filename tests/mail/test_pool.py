"""The connection pool against a real local server: never more open connections than its
size, even when the size comes down while they are in use; a message whose permit runs out
waiting for a connection is not started; a refused login is told apart from the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from herald.mail.mailer import CredentialsRefused, ServerUnavailable, TooLate
from herald.mail.pool import ConnectionPool
from herald.mail.smtp import Reply
from tests.mail.test_smtp import MESSAGE, settings_for
from tests.smtp_server import SmtpServer, slow


def test_a_pool_never_opens_more_than_its_size_even_after_shrinking(
    smtp_server: SmtpServer,
) -> None:
    for i in range(40):
        smtp_server.script(f"r{i}@example.com", slow(0.02))

    async def run() -> None:
        pool = ConnectionPool(settings_for(smtp_server, "none"), 4)
        first = [pool.send("a@example.com", f"r{i}@example.com", MESSAGE) for i in range(20)]
        sending = asyncio.gather(*first)
        await asyncio.sleep(0.05)  # all four connections busy
        pool.resize(2)
        await sending
        assert smtp_server.most_open_connections == 4
        await asyncio.sleep(0.1)  # the two beyond the new size were closed on their return
        assert smtp_server.open_connections == 2
        smtp_server.most_open_connections = smtp_server.open_connections
        rest = [pool.send("a@example.com", f"r{i}@example.com", MESSAGE) for i in range(20, 40)]
        await asyncio.gather(*rest)
        await pool.close()

    asyncio.run(run())
    assert smtp_server.most_open_connections == 2
    assert len(smtp_server.messages) == 40


def test_a_message_whose_permit_runs_out_waiting_is_not_started(smtp_server: SmtpServer) -> None:
    smtp_server.script("slow@example.com", slow(0.5))

    async def run() -> None:
        pool = ConnectionPool(settings_for(smtp_server, "none"), 1)
        busy = asyncio.create_task(pool.send("a@example.com", "slow@example.com", MESSAGE))
        await asyncio.sleep(0.05)
        with pytest.raises(TooLate):
            await pool.send("a@example.com", "late@example.com", MESSAGE, time.monotonic() + 0.1)
        await busy
        pool.resize(0)
        with pytest.raises(TooLate):  # holding no slot, it opens nothing
            await pool.send("a@example.com", "none@example.com", MESSAGE)
        await pool.close()

    asyncio.run(run())
    assert [m.rcpt_tos for m in smtp_server.messages] == [["slow@example.com"]]


def test_a_message_is_asked_whether_to_start_once_it_holds_a_connection(
    smtp_server: SmtpServer,
) -> None:
    """What may stop a message (the relay starting to rest) is asked after its wait for a
    connection, right before the transaction: a stop there leaves it unsent."""
    smtp_server.script("slow@example.com", slow(0.3))
    stopped = False

    async def before_start() -> None:
        if stopped:
            raise TooLate("resting")

    async def run() -> None:
        nonlocal stopped
        pool = ConnectionPool(settings_for(smtp_server, "none"), 1)
        busy = asyncio.create_task(pool.send("a@example.com", "slow@example.com", MESSAGE))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(
            pool.send("a@example.com", "queued@example.com", MESSAGE, None, before_start)
        )
        await asyncio.sleep(0.05)
        stopped = True  # while it waits for the only connection
        await busy
        with pytest.raises(TooLate):
            await waiting
        stopped = False
        await pool.send("a@example.com", "later@example.com", MESSAGE, None, before_start)
        await pool.close()

    asyncio.run(run())
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["slow@example.com"],
        ["later@example.com"],
    ]


def test_a_refused_login_is_credentials_refused(
    start_smtp_server: Callable[..., SmtpServer],
) -> None:
    server = start_smtp_server(tls="starttls", credentials=("mailer", "right"))

    async def run(password: str) -> None:
        smtp = settings_for(server, "starttls", password=password)
        pool = ConnectionPool(smtp, 1)
        try:
            await pool.ensure_ready()
        finally:
            await pool.close()

    with pytest.raises(CredentialsRefused) as refused:
        asyncio.run(run("wrong"))
    assert refused.value.reply is not None and refused.value.reply.code == 535
    asyncio.run(run("right"))


def test_an_unreachable_server_is_unavailable_not_refused_credentials() -> None:
    nowhere = SmtpServer()  # not started

    async def run() -> None:
        pool = ConnectionPool(settings_for(nowhere, "none"), 1)
        await pool.ensure_ready()

    with pytest.raises(ServerUnavailable) as unavailable:
        asyncio.run(run())
    assert not isinstance(unavailable.value, CredentialsRefused)
    assert not unavailable.value.throttling


@pytest.mark.parametrize(
    ("reply", "throttling"),
    [
        ("421 4.7.0 Try again later, closing connection", True),
        ("421 4.7.0 Too many connections, service not available", True),
        ("421 4.3.2 Service shutting down", False),  # going away: retried, not a rest
        ("421 Service not available, closing transmission channel", False),
        ("454 Throttling failure: Maximum sending rate exceeded.", True),
        ("451 4.7.500 Server busy. Please try again later", True),
        ("452 4.5.3 Too many recipients", True),
        ("451 4.3.2 Rate limited, slow down", True),
        ("452 4.3.1 Insufficient system resources", True),
        ("451 4.7.1 Greylisted, try again later", False),
        ("451 4.7.1 Try again later", False),
        ("452 4.2.2 Mailbox full", False),
        ("450 4.2.0 Mailbox unavailable", False),
        ("550 5.7.1 Rate limit exceeded, message rejected", False),  # 5xx: failed, not slowed
    ],
)
def test_which_answers_ask_to_slow_down(reply: str, throttling: bool) -> None:
    code, text = reply.split(" ", 1)
    assert Reply(int(code), text).throttling is throttling
