"""A small SMTP client for bulk sending: persistent connections, PIPELINING, and an exact
account of how far each transaction got.

Why our own: knowing whether a failure happened before or after the final dot decides
whether a message may be retried (before: nothing was accepted) or must be left UNKNOWN
(after: the server may have accepted it). Pipelining MAIL, RCPT and DATA also halves the
round trips per message.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import re
import ssl
from dataclasses import dataclass, field

from herald.mail import egress, tls

DEFAULT_TIMEOUT = 60.0
_MAX_LINE = 8192
# 530 authentication required, 534 mechanism too weak, 535 credentials invalid
CREDENTIALS_REFUSED = frozenset({530, 534, 535})
# What 451 and 452 say when the relay (not the recipient's mailbox) wants fewer messages;
# 454 always means it, and 421 unless the server says it is going away. Greylisting ("try
# again later") is about one recipient.
_THROTTLING_TEXT = re.compile(
    r"\b(rate|throttl\w*|too many|slow(ing)? down|busy|limit(s|ed)?|exceeded|congest\w*"
    r"|insufficient system (resources|storage))\b",
    re.IGNORECASE,
)
# A 421 for a server shutting down: a rest does not help it; the send is retried, and a
# server that stays away holds the campaign (it cannot be reached).
_GOING_AWAY_TEXT = re.compile(
    r"\b(shutting down|shut ?down|going down|not available|unavailable|maintenance)\b",
    re.IGNORECASE,
)


class Phase(enum.Enum):
    """How far a transaction got when it failed."""

    BEFORE_DATA = "before_data"  # nothing sent that could be delivered: safe to retry
    AFTER_DOT = "after_dot"  # the whole message went out: the server may have accepted it


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        """2xx: accepted. (354 and 334 are continuations, checked where expected.)"""
        return 200 <= self.code < 300

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def throttling(self) -> bool:
        """The relay asks for fewer messages: 454, a 421/451/452 saying so, or a 421 that
        does not say the server is going away."""
        if self.code == 454:
            return True
        if self.code in (421, 451, 452) and _THROTTLING_TEXT.search(self.text):
            return True
        return self.code == 421 and not _GOING_AWAY_TEXT.search(self.text)

    @property
    def credentials_refused(self) -> bool:
        return self.code in CREDENTIALS_REFUSED

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class SmtpError(Exception):
    """The server refused something; ``reply`` says what."""

    def __init__(self, reply: Reply, during: str) -> None:
        super().__init__(f"{during}: {reply}")
        self.reply = reply
        self.during = during


class NoSmtpServer(OSError):
    """Nothing at the address answered as an SMTP server: refused, silent or another
    protocol, deliberately not told apart."""

    def __init__(self) -> None:
        super().__init__("the server did not answer as an SMTP server")


class ConnectionLost(Exception):
    """The connection failed mid-transaction; ``phase`` says whether a retry is safe."""

    def __init__(self, message: str, phase: Phase) -> None:
        super().__init__(message)
        self.phase = phase


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str = "starttls"  # "starttls" | "tls" | "none"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    verify_tls: bool = True
    local_hostname: str = "herald.localdomain"
    # Non-public networks the operator lets Herald connect to (HERALD_SMTP_ALLOWED_NETWORKS).
    allowed_networks: tuple[egress.Network, ...] = ()

    def tls_context(self) -> ssl.SSLContext:
        return tls.client_context(self.verify_tls)


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 transparency, plus the terminating dot."""
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


async def _data_waiting(reader: asyncio.StreamReader) -> bool:
    """Whether bytes (or the end of the stream) are already there, without waiting for any.

    A read that would have to wait is cancelled at once; one that finds data returns it
    without suspending, before the deadline can fire.
    """
    try:
        async with asyncio.timeout(0):
            await reader.read(1)
    except TimeoutError:
        return False
    return True


class SmtpConnection:
    """One authenticated SMTP session, used for many messages in turn (not concurrently)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: SmtpSettings
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.settings = settings
        self.extensions: dict[str, str] = {}
        self.broken = False
        self._phase = Phase.BEFORE_DATA  # where the current transaction is, for ConnectionLost

    @classmethod
    async def open(cls, settings: SmtpSettings) -> SmtpConnection:
        """Connect, greet, secure and log in. SmtpError when the server refuses, NoSmtpServer
        when nothing at the address answered as an SMTP server, OSError or TimeoutError for a
        failure later on, and egress.HostNotAllowed for a host whose addresses are refused."""
        ssl_context = settings.tls_context() if settings.security == "tls" else None
        # Connect to the address that was checked, not to the name again: DNS may change.
        address = await asyncio.wait_for(
            egress.checked_address(settings.host, settings.port, settings.allowed_networks),
            settings.timeout,
        )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    address,
                    settings.port,
                    ssl=ssl_context,
                    server_hostname=settings.host if ssl_context else None,
                    limit=_MAX_LINE * 4,
                ),
                settings.timeout,
            )
        except ssl.SSLError:
            raise  # implicit TLS failed: the test message words it like NoSmtpServer
        except (OSError, TimeoutError) as exc:
            raise NoSmtpServer() from exc
        conn = cls(reader, writer, settings)
        try:
            await conn._greeting()
            async with asyncio.timeout(settings.timeout):
                await conn._handshake(reader, writer)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _greeting(self) -> None:
        """The server's first line; anything but an SMTP reply is NoSmtpServer, whatever it
        was (closed, silent, another protocol's banner), so that no port scan reads it."""
        try:
            async with asyncio.timeout(self.settings.timeout):
                reply = await self._read_reply()
        except (
            OSError,
            EOFError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ) as exc:
            raise NoSmtpServer() from exc
        await self._expect(reply, "greeting")

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        settings = self.settings
        await self._ehlo()
        if settings.security == "starttls":
            if "starttls" not in self.extensions:
                raise SmtpError(Reply(0, "the server does not offer STARTTLS"), "STARTTLS")
            await self._command("STARTTLS", "STARTTLS")
            if await _data_waiting(reader):
                # Bytes that arrived before the handshake would be read as if they had
                # come over TLS: a man in the middle's injection. Refuse the session.
                raise SmtpError(Reply(0, "data arrived before the TLS handshake"), "STARTTLS")
            await writer.start_tls(settings.tls_context(), server_hostname=settings.host)
            await self._ehlo()
        if settings.username and settings.password:
            await self._login()

    async def send(self, sender: str, recipient: str, message: bytes) -> Reply:
        """Send one message; the final reply (2xx) or SmtpError / ConnectionLost."""
        if self.broken:
            raise ConnectionLost("connection already broken", Phase.BEFORE_DATA)
        self._phase = Phase.BEFORE_DATA
        try:
            # One deadline for the whole transaction: cheaper than one per reply line.
            async with asyncio.timeout(self.settings.timeout):
                reply = await self._transaction(sender, recipient, message)
        except (
            OSError,
            EOFError,
            ValueError,  # a reply line longer than the stream's limit
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ssl.SSLError,
        ) as exc:
            self.abort()
            raise ConnectionLost(
                f"connection lost: {exc or type(exc).__name__}", self._phase
            ) from exc
        if not reply.ok:
            self._closing([reply])
            raise SmtpError(reply, "end of DATA")
        return reply

    async def _transaction(self, sender: str, recipient: str, message: bytes) -> Reply:
        commands = [f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"]
        if "pipelining" in self.extensions:
            self._write("".join(c + "\r\n" for c in commands))
            replies = [await self._read_reply() for _ in commands]
        else:
            replies = []
            for command in commands:
                self._write(command + "\r\n")
                replies.append(await self._read_reply())
                if not (replies[-1].ok or replies[-1].code == 354):
                    break
        for command, reply in zip(commands[:2], replies, strict=False):
            if not reply.ok:
                if self._closing(replies):
                    raise SmtpError(reply, command.split(":")[0])
                if replies[-1].code == 354:  # DATA accepted without a recipient: end it
                    self._write(".\r\n")
                    await self._read_reply()
                await self._reset()
                raise SmtpError(reply, command.split(":")[0])
        if replies[-1].code != 354:
            if not self._closing(replies):
                await self._reset()
            raise SmtpError(replies[-1], "DATA")
        self._writer.write(dot_stuff(message))
        self._phase = Phase.AFTER_DOT
        return await self._read_reply()

    async def close(self) -> None:
        if not self.broken:
            try:
                self._write("QUIT\r\n")
                await asyncio.wait_for(self._read_reply(), 5)
            except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
                pass
        self.abort()

    def _closing(self, replies: list[Reply]) -> bool:
        """421: the server is closing the channel (RFC 5321 3.8). Nothing more may be sent
        on it; a message written next would be lost after its dot, as if maybe delivered."""
        if any(r.code == 421 for r in replies):
            self.abort()
            return True
        return False

    def abort(self) -> None:
        self.broken = True
        self._writer.close()

    # -- protocol details --------------------------------------------------------------

    def _write(self, data: str) -> None:
        self._writer.write(data.encode("utf-8"))

    async def _read_reply(self) -> Reply:
        lines: list[str] = []
        while True:
            raw = await self._reader.readline()  # callers hold the deadline
            if not raw:
                raise EOFError("the server closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not (line[:3].isascii() and line[:3].isdigit()):
                raise EOFError("the server did not answer as an SMTP server")
            lines.append(line[4:])
            if len(line) == 3 or line[3] != "-":
                return Reply(int(line[:3]), "\n".join(lines).strip())

    async def _command(self, command: str, during: str) -> Reply:
        self._write(command + "\r\n")
        return await self._expect(await self._read_reply(), during)

    @staticmethod
    async def _expect(reply: Reply, during: str) -> Reply:
        if not reply.ok:
            raise SmtpError(reply, during)
        return reply

    async def _ehlo(self) -> None:
        reply = await self._command(f"EHLO {self.settings.local_hostname}", "EHLO")
        self.extensions = {}
        for line in reply.text.split("\n")[1:]:
            name, _, params = line.strip().partition(" ")
            self.extensions[name.lower()] = params

    async def _login(self) -> None:
        """Credentials go only over TLS and only to a server that asks for them."""
        if self.settings.security not in ("starttls", "tls"):
            raise SmtpError(
                Reply(0, "Herald sends a username and password only over TLS (starttls or tls)"),
                "AUTH",
            )
        if "auth" not in self.extensions:
            raise SmtpError(Reply(0, "the server does not offer AUTH"), "AUTH")
        methods = self.extensions["auth"].upper().split()
        user, password = self.settings.username, self.settings.password
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            await self._command(f"AUTH PLAIN {token}", "AUTH")
            return
        if "LOGIN" not in methods:
            raise SmtpError(Reply(0, f"no supported AUTH method in {methods}"), "AUTH")
        self._write("AUTH LOGIN\r\n")
        for value in (user, password):
            reply = await self._read_reply()
            if reply.code != 334:
                raise SmtpError(reply, "AUTH")
            self._write(base64.b64encode(value.encode()).decode() + "\r\n")
        await self._expect(await self._read_reply(), "AUTH")

    async def _reset(self) -> None:
        self._write("RSET\r\n")
        await self._read_reply()
