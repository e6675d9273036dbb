"""The interface every sender of mail uses: ConnectionPool sends over SMTP; InMemoryMailer
keeps messages in a list, for unit tests only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from herald.mail.smtp import Reply, SmtpSettings


class ServerUnavailable(Exception):
    """The server cannot be reached or refuses our login: hold, don't fail."""


class Mailer(Protocol):
    """Sends messages to one server. ``send`` answers the final 2xx reply, or raises
    ``smtp.SmtpError`` (refused), ``smtp.ConnectionLost`` (its ``phase`` says whether a retry
    is safe) or ``ServerUnavailable``."""

    async def ensure_ready(self) -> None: ...

    async def send(self, sender: str, recipient: str, message: bytes) -> Reply: ...

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

    async def send(self, sender: str, recipient: str, message: bytes) -> Reply:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(SentMessage(sender, recipient, message))
        return Reply(250, f"queued as {len(self.sent)}")

    async def close(self) -> None:
        self.closed = True
