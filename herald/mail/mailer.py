"""The interface every sender of mail uses: ConnectionPool sends over SMTP; InMemoryMailer
keeps messages in a list, for unit tests only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from herald.mail.smtp import Reply, SmtpSettings


class ServerUnavailable(Exception):
    """The server cannot be reached, or refused the session: hold, don't fail. ``reply``
    is its answer when it gave one (a throttling 421 in its greeting, a refused login)."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply

    @property
    def throttling(self) -> bool:
        return self.reply is not None and self.reply.throttling


class CredentialsRefused(ServerUnavailable):
    """The relay refuses Herald's login (530/534/535): nothing will go until someone fixes
    the configuration."""


class TooLate(Exception):
    """The message's permit ran out before a connection was free: nothing was sent."""


# Asked right before a transaction starts; it raises TooLate (do not start) or answers an
# awaitable to wait on first (which may raise it), or None: most calls then cost no await.
BeforeStart = Callable[[], Awaitable[None] | None]


class Mailer(Protocol):
    """Sends messages to one server over at most ``size`` connections (``resize`` changes
    it). ``send`` answers the final 2xx reply, or raises ``smtp.SmtpError`` (refused),
    ``smtp.ConnectionLost`` (its ``phase`` says whether a retry is safe),
    ``ServerUnavailable``, or ``TooLate`` when no connection was free by ``not_after``
    (``time.monotonic()``; the message was not started). ``before_start``, when given, is
    called (and what it answers awaited) once a connection is in hand, right before the
    transaction starts: ``TooLate`` there leaves the message unsent (the relay is resting,
    say)."""

    @property
    def size(self) -> int: ...

    def resize(self, size: int) -> None: ...

    async def ensure_ready(self) -> None: ...

    async def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        not_after: float | None = None,
        before_start: BeforeStart | None = None,
    ) -> Reply: ...

    async def close(self) -> None: ...


class MailerFactory(Protocol):
    def __call__(self, settings: SmtpSettings, size: int) -> Mailer: ...


@dataclass(frozen=True)
class SentMessage:
    sender: str
    recipient: str
    message: bytes


@dataclass
class InMemoryMailer:
    """Accepts everything (or refuses with ``refuse``); for unit tests."""

    settings: SmtpSettings | None = None
    size: int = 1
    sent: list[SentMessage] = field(default_factory=list)
    refuse: Exception | None = None
    closed: bool = False

    async def ensure_ready(self) -> None:
        if self.refuse is not None:
            raise ServerUnavailable(str(self.refuse))

    def resize(self, size: int) -> None:
        self.size = size

    async def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        not_after: float | None = None,
        before_start: BeforeStart | None = None,
    ) -> Reply:
        if before_start is not None and (waiting := before_start()) is not None:
            await waiting
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(SentMessage(sender, recipient, message))
        return Reply(250, f"queued as {len(self.sent)}")

    async def close(self) -> None:
        self.closed = True
