"""The SMTP client against a real local server: security modes, login, refusals, timeouts,
and how far a transaction got when the connection failed."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from herald.mail.egress import parse_networks
from herald.mail.smtp import (
    ConnectionLost,
    Phase,
    SmtpConnection,
    SmtpError,
    SmtpSettings,
    dot_stuff,
)
from herald.mail.testsend import SmtpFailed
from herald.mailconfig.account import MailAccount
from herald.mailconfig.testmail import send_test_message
from tests.line_server import LineServer
from tests.smtp_server import SmtpServer, TlsMode, _self_signed_context, drop, reject, slow

CREDENTIALS = ("mailer", "s3cret pass")
LOOPBACK = parse_networks("127.0.0.0/8")
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


def settings_for(server: SmtpServer, security: str, **overrides: object) -> SmtpSettings:
    username, password = server.credentials or ("", "")
    values: dict[str, object] = {
        "username": username,
        "password": password,
        "timeout": 5.0,
        "verify_tls": False,
        "allowed_networks": LOOPBACK,  # the test server is on loopback
        **overrides,
    }
    return SmtpSettings(server.host, server.port, security, **values)  # type: ignore[arg-type]


async def deliver(smtp: SmtpSettings, *recipients: str) -> list[int]:
    conn = await SmtpConnection.open(smtp)
    try:
        return [(await conn.send("a@example.com", r, MESSAGE)).code for r in recipients]
    finally:
        await conn.close()


@pytest.mark.parametrize(("tls", "security"), [("starttls", "starttls"), ("tls", "tls")])
def test_tls_modes_deliver_encrypted_and_logged_in(
    start_smtp_server: Callable[..., SmtpServer], tls: TlsMode, security: str
) -> None:
    server = start_smtp_server(tls=tls, credentials=CREDENTIALS)
    assert asyncio.run(deliver(settings_for(server, security), "b@example.com")) == [250]
    [received] = server.messages
    assert (received.tls, received.login, received.rcpt_tos) == (True, "mailer", ["b@example.com"])


def test_plain_mode_never_logs_in(start_smtp_server: Callable[..., SmtpServer]) -> None:
    """Issue 13.1 reversed the old "plain mode logs in without TLS": credentials go only
    over TLS, so a username with security none fails before anything is sent."""
    server = start_smtp_server(credentials=CREDENTIALS)
    with pytest.raises(SmtpError, match="only over TLS"):
        asyncio.run(deliver(settings_for(server, "none"), "b@example.com"))
    assert server.messages == []


def test_starttls_is_required_not_best_effort(smtp_server: SmtpServer) -> None:
    """A server that does not offer STARTTLS must not get the password in plain text."""
    smtp = settings_for(smtp_server, "starttls", username="u", password="p")
    with pytest.raises(SmtpError, match="STARTTLS"):
        asyncio.run(deliver(smtp, "b@example.com"))
    assert smtp_server.messages == []


def test_plain_mode_does_not_upgrade(start_smtp_server: Callable[..., SmtpServer]) -> None:
    server = start_smtp_server(tls="starttls")  # this one insists on STARTTLS before MAIL
    with pytest.raises(SmtpError) as refused:
        asyncio.run(deliver(settings_for(server, "none"), "b@example.com"))
    assert refused.value.reply.code == 530


def test_implicit_tls_against_a_plain_server_fails(smtp_server: SmtpServer) -> None:
    with pytest.raises((SmtpError, OSError, EOFError, TimeoutError)):
        asyncio.run(deliver(settings_for(smtp_server, "tls", timeout=2.0), "b@example.com"))


def test_certificates_are_verified_by_default(
    start_smtp_server: Callable[..., SmtpServer],
) -> None:
    server = start_smtp_server(tls="tls")
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(deliver(settings_for(server, "tls", verify_tls=True), "b@example.com"))


def test_a_refused_recipient_leaves_the_connection_usable(smtp_server: SmtpServer) -> None:
    smtp_server.script("gone@example.com", reject("550 5.1.1 Gone"))

    async def both() -> tuple[int, int]:
        conn = await SmtpConnection.open(settings_for(smtp_server, "none"))
        with pytest.raises(SmtpError) as refused:
            await conn.send("a@example.com", "gone@example.com", MESSAGE)
        reply = await conn.send("a@example.com", "here@example.com", MESSAGE)
        await conn.close()
        return refused.value.reply.code, reply.code

    assert asyncio.run(both()) == (550, 250)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["here@example.com"]]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_421_closes_the_connection_for_good(smtp_server: SmtpServer, stage: str) -> None:
    """421 means the server is closing the channel: nothing more is sent on it, so the next
    message can never be written into a closing connection and end "maybe delivered"."""
    smtp_server.script("busy@example.com", reject("421 4.3.2 Shutting down", stage=stage))  # type: ignore[arg-type]

    async def go() -> tuple[int, bool]:
        conn = await SmtpConnection.open(settings_for(smtp_server, "none"))
        with pytest.raises(SmtpError) as closing:
            await conn.send("a@example.com", "busy@example.com", MESSAGE)
        with pytest.raises(ConnectionLost) as refused:
            await conn.send("a@example.com", "next@example.com", MESSAGE)
        assert refused.value.phase is Phase.BEFORE_DATA
        return closing.value.reply.code, conn.broken

    assert asyncio.run(go()) == (421, True)
    assert smtp_server.messages == []


def test_a_drop_after_the_final_dot_is_reported_as_possibly_delivered(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.script("maybe@example.com", drop(stage="data"))

    async def go() -> Phase:
        conn = await SmtpConnection.open(settings_for(smtp_server, "none"))
        with pytest.raises(ConnectionLost) as lost:
            await conn.send("a@example.com", "maybe@example.com", MESSAGE)
        return lost.value.phase

    assert asyncio.run(go()) is Phase.AFTER_DOT


def test_a_drop_before_data_is_safe_to_retry(smtp_server: SmtpServer) -> None:
    smtp_server.script("early@example.com", drop(stage="rcpt"))

    async def go() -> Phase:
        conn = await SmtpConnection.open(settings_for(smtp_server, "none"))
        with pytest.raises(ConnectionLost) as lost:
            await conn.send("a@example.com", "early@example.com", MESSAGE)
        return lost.value.phase

    assert asyncio.run(go()) is Phase.BEFORE_DATA
    assert smtp_server.messages == []


def test_dot_stuffing_keeps_lines_that_start_with_a_dot(smtp_server: SmtpServer) -> None:
    body = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"
    assert dot_stuff(body).endswith(b"\r\n.\r\n")

    async def go() -> None:
        conn = await SmtpConnection.open(settings_for(smtp_server, "none"))
        await conn.send("a@example.com", "b@example.com", body)
        await conn.close()

    asyncio.run(go())
    assert (
        smtp_server.messages[0]
        .data.replace(b"\r\n", b"\n")
        .endswith(b".leading dot\n..two\n.\nend\n")
    )


def test_a_silent_server_times_out(smtp_server: SmtpServer) -> None:
    smtp_server.script("slow@example.com", slow(3))
    account = MailAccount(settings_for(smtp_server, "none"), "Tests", "a@example.com")
    started = time.monotonic()
    with pytest.raises(SmtpFailed) as failed:
        asyncio.run(send_test_message(account, "slow@example.com", timeout=0.5))
    assert time.monotonic() - started < 2.5
    assert "did not answer in time" in failed.value.message
    assert failed.value.details["smtpCode"] is None


def test_settings_never_show_the_password() -> None:
    smtp = SmtpSettings("smtp.example.com", 587, "starttls", "mailer", "hunter2-secret")
    assert "hunter2-secret" not in repr(smtp)
    assert "hunter2-secret" not in repr(dataclasses.replace(smtp, timeout=1))


@pytest.mark.parametrize("injected", [b"250-PIPELINING\r\n250 AUTH PLAIN\r\n", b"2"])
def test_bytes_injected_before_the_tls_handshake_end_the_session(injected: bytes) -> None:
    """A man in the middle appends replies to STARTTLS's 220 in clear: they would be read as
    if they had come over TLS. The session is refused before any TLS or login."""
    with tempfile.TemporaryDirectory() as certs:
        context = _self_signed_context(Path(certs))
        server = LineServer(["AUTH PLAIN"], tls_context=context, inject=injected).start()
        try:
            smtp = SmtpSettings(
                "127.0.0.1",
                server.port,
                "starttls",
                *CREDENTIALS,
                timeout=5,
                verify_tls=False,
                allowed_networks=LOOPBACK,
            )
            with pytest.raises(SmtpError, match="before the TLS handshake"):
                asyncio.run(SmtpConnection.open(smtp))
        finally:
            server.stop()
    assert server.tls_lines == []  # no EHLO, no AUTH over the TLS the injection poisoned
