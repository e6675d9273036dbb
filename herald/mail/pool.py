"""SMTP connections per org, kept open across batches and shared by a worker's tasks: the
Mailer that sends over real SMTP."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from herald.mail.egress import HostNotAllowed
from herald.mail.mailer import ServerUnavailable
from herald.mail.smtp import Reply, SmtpConnection, SmtpError, SmtpSettings


class ConnectionPool:
    """At most ``size`` open connections to one server, handed out one task at a time."""

    def __init__(self, settings: SmtpSettings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._idle: list[SmtpConnection] = []
        self._slots = asyncio.Semaphore(size)

    async def _open(self) -> SmtpConnection:
        try:
            return await SmtpConnection.open(self.settings)
        except SmtpError as exc:
            raise ServerUnavailable(f"SMTP server refused the session ({exc})") from exc
        except HostNotAllowed as exc:
            raise ServerUnavailable(exc.message) from exc
        except (OSError, TimeoutError, ssl.SSLError, EOFError) as exc:
            where = f"{self.settings.host}:{self.settings.port}"
            raise ServerUnavailable(
                f"cannot reach SMTP server {where}: {exc or type(exc).__name__}"
            ) from exc

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SmtpConnection]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._open()
            try:
                yield conn
            finally:
                if not conn.broken:
                    self._idle.append(conn)

    async def ensure_ready(self) -> None:
        """Fail fast (ServerUnavailable) before marking anything in flight."""
        async with self.connection():
            pass

    async def send(self, sender: str, recipient: str, message: bytes) -> Reply:
        async with self.connection() as conn:
            return await conn.send(sender, recipient, message)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
