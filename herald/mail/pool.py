"""SMTP connections per org, kept open across batches and shared by a worker's tasks: the
Mailer that sends over real SMTP."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from herald.mail.egress import HostNotAllowed
from herald.mail.mailer import BeforeStart, CredentialsRefused, ServerUnavailable, TooLate
from herald.mail.smtp import Reply, SmtpConnection, SmtpError, SmtpSettings


class ConnectionPool:
    """At most ``size`` open connections to one server, handed out one task at a time.

    ``resize`` lowers or raises the bound while in use (the org's share of its relay's
    connections changes): idle connections beyond it close at once, busy ones when they
    come back. Waiting tasks are handed a place in turn, as a semaphore does (this is one
    whose size can change, and a wait that can end at a deadline)."""

    def __init__(self, settings: SmtpSettings, size: int) -> None:
        self.settings = settings
        self._size = size
        self._idle: list[SmtpConnection] = []
        self._open = 0  # connections open: idle, or in a task's hands
        self._busy = 0  # places taken (a task may hold one before its connection is open)
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def size(self) -> int:
        return self._size

    def resize(self, size: int) -> None:
        self._size = max(size, 0)
        while self._idle and self._open > self._size:
            self._drop(self._idle.pop())
        if self._size == 0:  # nothing may be opened now: nobody waits for it
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(TooLate("this worker holds no connection to the relay"))
        self._hand_out()

    def _hand_out(self) -> None:
        """Places free under the bound go to the tasks waiting, first come first served."""
        while self._waiting and self._busy < self._size:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._busy += 1
                waiter.set_result(None)

    async def _take(self, not_after: float | None) -> None:
        """A place under the bound (TooLate past ``not_after``, or while the bound is 0)."""
        if self._size == 0:
            raise TooLate("this worker holds no connection to the relay now")
        if self._busy < self._size and not self._waiting:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            if not_after is None:
                await waiter
            else:
                async with asyncio.timeout(max(not_after - time.monotonic(), 0)):
                    await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give(None)  # handed a place as the wait ended: pass it on
            elif not waiter.done():
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                late = "no connection was free before the message's permit ran out"
                raise TooLate(late) from None
            raise

    def _give(self, conn: SmtpConnection | None) -> None:
        self._busy -= 1
        if conn is not None:
            if conn.broken or self._open > self._size:  # the bound came down while in use
                self._drop(conn)
            else:
                self._idle.append(conn)
        self._hand_out()

    def _drop(self, conn: SmtpConnection) -> None:
        self._open -= 1
        conn.abort()

    async def _connect(self) -> SmtpConnection:
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

    @asynccontextmanager
    async def connection(self, not_after: float | None = None) -> AsyncIterator[SmtpConnection]:
        await self._take(not_after)
        conn = None
        try:
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = await self._connect()
                self._open += 1
            # checked once the connection is there: opening one may take a while
            if not_after is not None and time.monotonic() > not_after:
                raise TooLate("the message's permit ran out before a connection was free")
            yield conn
        finally:
            self._give(conn)

    async def ensure_ready(self) -> None:
        """Fail fast (ServerUnavailable) before marking anything in flight."""
        async with self.connection():
            pass

    async def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        not_after: float | None = None,
        before_start: BeforeStart | None = None,
    ) -> Reply:
        async with self.connection(not_after) as conn:
            # asked only now: a message may wait long for a connection, and what it must
            # not miss (the relay starting to rest) can happen meanwhile
            if before_start is not None and (waiting := before_start()) is not None:
                await waiting
            return await conn.send(sender, recipient, message)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
