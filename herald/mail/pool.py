"""SMTP connections per org, kept open across batches and shared by a worker's tasks: the
Mailer that sends over real SMTP."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from herald.mail.egress import HostNotAllowed
from herald.mail.mailer import CredentialsRefused, ServerUnavailable, TooLate
from herald.mail.smtp import Reply, SmtpConnection, SmtpError, SmtpSettings


class ConnectionPool:
    """At most ``size`` open connections to one server, handed out one task at a time.

    ``resize`` lowers or raises the bound while in use (the org's share of its relay's
    connections changes): idle connections beyond it close at once, busy ones when they
    come back."""

    def __init__(self, settings: SmtpSettings, size: int) -> None:
        self.settings = settings
        self._size = size
        self._idle: list[SmtpConnection] = []
        self._busy = 0
        self._changed = asyncio.Condition()

    @property
    def size(self) -> int:
        return self._size

    def resize(self, size: int) -> None:
        self._size = max(size, 0)
        while self._idle and len(self._idle) + self._busy > self._size:
            self._idle.pop().abort()
        # Waiters re-check the bound; notifying needs the condition's lock, taken on the loop.
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _open(self) -> SmtpConnection:
        try:
            return await SmtpConnection.open(self.settings)
        except SmtpError as exc:
            message = f"SMTP server refused the session ({exc})"
            if exc.reply.credentials_refused:
                raise CredentialsRefused(message, exc.reply) from exc
            raise ServerUnavailable(message, exc.reply) from exc
        except HostNotAllowed as exc:
            raise ServerUnavailable(exc.message) from exc
        except (OSError, TimeoutError, ssl.SSLError, EOFError) as exc:
            where = f"{self.settings.host}:{self.settings.port}"
            raise ServerUnavailable(
                f"cannot reach SMTP server {where}: {exc or type(exc).__name__}"
            ) from exc

    async def _take(self, not_after: float | None) -> None:
        """Wait for room under the bound (TooLate past ``not_after``)."""
        async with self._changed:
            while self._busy >= self._size:
                if self._size == 0:
                    raise TooLate("this worker holds no connection to the relay now")
                if not_after is None:
                    await self._changed.wait()
                    continue
                left = not_after - time.monotonic()
                if left <= 0:
                    raise TooLate("no connection was free before the message's permit ran out")
                try:
                    async with asyncio.timeout(left):
                        await self._changed.wait()
                except TimeoutError:
                    continue
            self._busy += 1

    async def _give(self, conn: SmtpConnection | None) -> None:
        async with self._changed:
            self._busy -= 1
            if conn is not None and not conn.broken:
                if len(self._idle) + self._busy < self._size:
                    self._idle.append(conn)
                else:
                    conn.abort()  # the bound came down while it was in use
            self._changed.notify()

    @asynccontextmanager
    async def connection(self, not_after: float | None = None) -> AsyncIterator[SmtpConnection]:
        await self._take(not_after)
        conn = None
        try:
            conn = self._idle.pop() if self._idle else await self._open()
            # checked once the connection is there: opening one may take a while
            if not_after is not None and time.monotonic() > not_after:
                raise TooLate("the message's permit ran out before a connection was free")
            yield conn
        finally:
            await self._give(conn)

    async def ensure_ready(self) -> None:
        """Fail fast (ServerUnavailable) before marking anything in flight."""
        async with self.connection():
            pass

    async def send(
        self, sender: str, recipient: str, message: bytes, not_after: float | None = None
    ) -> Reply:
        async with self.connection(not_after) as conn:
            return await conn.send(sender, recipient, message)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
