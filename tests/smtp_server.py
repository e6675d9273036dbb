"""A real SMTP server on loopback for tests: aiosmtpd in its own thread, scriptable per recipient.

    server = SmtpServer(credentials=("mailer", "s3cret")).start()
    server.script("greylisted@example.com", defer(times=2))
    server.script("gone@example.com", reject("550 5.1.1 No such user"))
    ... send through 127.0.0.1:server.port ...
    assert server.messages[0].message["Subject"] == "Hello"
    server.stop()

Tests get one through the ``smtp_server`` fixture, or several (or non-default ones, e.g. with
AUTH or TLS) through ``start_smtp_server``; a conftest imports both from here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import logging
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.ports import free_port

HOST = "127.0.0.1"
SERVER_NAME = "smtp.herald.test"

Stage = Literal["rcpt", "data"]
TlsMode = Literal["none", "starttls", "tls"]


class _QuietDeprecation(logging.Filter):
    """aiosmtpd warns about its own use of Session.login_data after every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietDeprecation())


@dataclass(frozen=True)
class Behaviour:
    """How the server answers for one recipient.

    ``stage`` picks the command answered: RCPT TO, or the end of DATA (the message was
    transferred; used for "the transaction may have completed" cases). Without ``reply``
    and ``drop`` the server accepts, after ``delay`` seconds. ``times`` limits how often
    the behaviour applies before the server accepts normally; None means always.
    """

    reply: str | None = None
    times: int | None = None
    delay: float = 0.0
    drop: bool = False
    stage: Stage = "rcpt"


def defer(times: int, reply: str = "451 4.7.1 Try again later") -> Behaviour:
    return Behaviour(reply=reply, times=times)


def reject(reply: str = "550 5.1.1 Mailbox unavailable", stage: Stage = "rcpt") -> Behaviour:
    return Behaviour(reply=reply, stage=stage)


def slow(seconds: float, stage: Stage = "data") -> Behaviour:
    return Behaviour(delay=seconds, stage=stage)


def drop(stage: Stage = "data") -> Behaviour:
    return Behaviour(drop=True, stage=stage)


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    queue_id: str
    login: str | None
    """The AUTH username the client logged in with, if it did."""
    tls: bool
    """Whether the message came over TLS (implicit or after STARTTLS)."""
    at: float = 0.0
    """When the server took it (time.monotonic(), at the end of DATA)."""


@dataclass
class _Script:
    behaviour: Behaviour
    remaining: int | None


class SmtpServer:
    def __init__(
        self,
        credentials: tuple[str, str] | None = None,
        tls: TlsMode = "none",
        port: int | None = None,
    ) -> None:
        self.credentials = credentials
        self.tls = tls
        self.host = HOST
        self.port = port or free_port()
        self.messages: list[Received] = []
        self.errors: list[Exception] = []
        self.transactions: list[float] = []  # when each MAIL FROM arrived (time.monotonic())
        self.open_connections = 0
        self.most_open_connections = 0
        self._scripts: dict[str, _Script] = {}
        self._at_transaction: tuple[int, Behaviour] | None = None
        self.picked: str | None = None  # the recipient ``script_at_transaction`` fell on
        self._lock = threading.Condition()
        self._certs: tempfile.TemporaryDirectory[str] | None = None
        self._controller: Controller | None = None

    # Arranging and inspecting (test thread)

    def script(self, address: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._scripts[address.lower()] = _Script(behaviour, behaviour.times)

    def script_at_transaction(self, number: int, behaviour: Behaviour) -> None:
        """Whoever the ``number``-th transaction (counting MAIL FROMs) is for gets
        ``behaviour`` from its RCPT TO on: a moment in the traffic, not a recipient, for
        when the order recipients are sent in is not known."""
        with self._lock:
            self._at_transaction = (number, behaviour)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")
            return list(self.messages)

    def received_per_address(self) -> Counter[str]:
        """How many messages each recipient address got."""
        with self._lock:
            return Counter(rcpt.lower() for m in self.messages for rcpt in m.rcpt_tos)

    def start(self) -> SmtpServer:
        if self.tls != "none":
            self._certs = tempfile.TemporaryDirectory(prefix="herald-smtp-")
        self._controller = self._make_controller()
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._certs is not None:
            self._certs.cleanup()
            self._certs = None

    # The server side (aiosmtpd's thread)

    def _make_controller(self) -> Controller:
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": SERVER_NAME,
            "authenticator": self._authenticate,
            "auth_require_tls": False,
        }
        if self._certs is not None:
            context = _self_signed_context(Path(self._certs.name))
            if self.tls == "tls":
                options["ssl_context"] = context
            else:
                options.update(tls_context=context, require_starttls=True)
        return _CountingController(_Handler(self), **options)

    def connected(self, change: int) -> None:
        with self._lock:
            self.open_connections += change
            self.most_open_connections = max(self.most_open_connections, self.open_connections)

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        if self.credentials is not None and isinstance(data, LoginPassword):
            given = (data.login.decode(), data.password.decode())
            if given == self.credentials:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def _take(self, address: str, stage: Stage) -> Behaviour | None:
        with self._lock:
            due = self._at_transaction
            if due is not None and stage == "rcpt" and len(self.transactions) >= due[0]:
                self._at_transaction, self.picked = None, address.lower()
                self._scripts[self.picked] = _Script(due[1], due[1].times)
            script = self._scripts.get(address.lower())
            if script is None or script.behaviour.stage != stage:
                return None
            if script.remaining is not None:
                if script.remaining <= 0:
                    return None
                script.remaining -= 1
            return script.behaviour

    async def answer(self, server: SMTP, address: str, stage: Stage) -> str | None:
        """The scripted answer for this recipient at this stage; None to go on normally."""
        behaviour = self._take(address, stage)
        if behaviour is None:
            return None
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.drop:
            assert server.transport is not None
            server.transport.close()
            await asyncio.sleep(60)  # cancelled by aiosmtpd once the connection is gone
        return behaviour.reply

    def record(self, server: SMTP, envelope: Envelope, session: Session) -> Received:
        data = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        transport = server.transport
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=email.message_from_bytes(data, policy=policy.default),
            queue_id=uuid.uuid4().hex[:12].upper(),
            login=login,
            tls=transport is not None and transport.get_extra_info("sslcontext") is not None,
            at=time.monotonic(),
        )
        with self._lock:
            self.messages.append(received)
            self._lock.notify_all()
        return received


class _Handler:
    """aiosmtpd's hooks, handing each decision to the SmtpServer."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.owner._lock:
            self.owner.transactions.append(time.monotonic())
        if self.owner.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        answer = await self.owner.answer(server, address, "rcpt")
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_exception(self, error: Exception) -> str:
        """A failed TLS handshake, a bug in a hook...: kept in ``errors`` instead of logged."""
        self.owner.errors.append(error)
        return f"451 4.3.0 Test server error: {type(error).__name__}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            answer = await self.owner.answer(server, address, "data")
            if answer is not None:
                return answer
        received = self.owner.record(server, envelope, session)
        return f"250 2.0.0 Ok: queued as {received.queue_id}"


class _CountingSMTP(SMTP):
    """Counts the connections open at once (``SmtpServer.most_open_connections``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.event_handler.owner.connected(+1)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.owner.connected(-1)


class _CountingController(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


def _self_signed_context(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def start_smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start servers with options (credentials, tls); all are stopped after the test."""
    started: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        server = SmtpServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(start_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain server that accepts everything unless scripted otherwise."""
    return start_smtp_server()
