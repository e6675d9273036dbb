"""What one worker knows of each org's relay resting after a throttling answer, asked right
before every SMTP transaction it starts (CONTRACT.md, "Sending control": a throttling
answer slows the whole relay, not just that send).

The backoff itself is shared through the org's row (herald.marketing.relay). Checking it
only when a chunk starts would let every other worker go on starting the messages it has
in flight, up to two chunks of them, for as long as those take. Reading it before each
message would cost a database round trip per message. So the row is read again at most
every ``LOOK_SECONDS`` per org, and only while messages to that relay are starting (never
while idle); the messages waiting meanwhile share that read. A backoff committed by any
worker thus stops this one's new transactions at most ``LOOK_SECONDS`` later; a throttling
answer this worker got itself stops them at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.log import get_logger
from herald.mail.mailer import BeforeStart, TooLate
from herald.marketing import relay

log = get_logger("herald.worker")
ReadOnlyDb = Callable[[Callable[[Session], Any]], Awaitable[Any]]

LOOK_SECONDS = 0.2  # how stale this worker's view of a relay's backoff may be
RESTING = "the relay is resting after a throttling answer"


class _OrgRest:
    """One org's relay as this worker knows it: resting until when, and its last read."""

    __slots__ = ("org_id", "reading", "rests", "seen", "until")

    def __init__(self, rests: RelayRests, org_id: uuid.UUID) -> None:
        self.rests = rests
        self.org_id = org_id
        self.until = 0.0  # time.monotonic(): nothing starts before
        self.seen = float("-inf")  # when the read behind ``until`` started
        self.reading: tuple[float, asyncio.Task[None]] | None = None

    def before_start(self) -> Awaitable[None] | None:
        """Asked before each transaction, so kept synchronous: TooLate while resting, or,
        once per look, the shared read to await first."""
        now = time.monotonic()
        if now - self.seen >= self.rests.look:
            return self._look_then_check(now)
        if now < self.until:
            raise TooLate(RESTING)
        return None

    async def _look_then_check(self, now: float) -> None:
        started, task = self.reading or (float("-inf"), None)
        if task is None or now - started >= self.rests.look:
            task = asyncio.create_task(self._refresh(now))
            self.reading = (now, task)
        await asyncio.shield(task)
        if time.monotonic() < self.until:
            raise TooLate(RESTING)

    def rest(self, seconds: float, since: float | None = None) -> None:
        until = (time.monotonic() if since is None else since) + seconds
        self.until = max(self.until, until)

    async def _refresh(self, started: float) -> None:
        try:
            read = functools.partial(relay.backoff_left, org_id=self.org_id)
            left = await self.rests.read(read)
        except SQLAlchemyError as exc:
            # The database is away: what is in flight goes on (its record will wait for
            # the database anyway); asked again at the next look, not per message.
            log.error("relay.rest_check_failed", org_id=str(self.org_id), error=str(exc)[:500])
            left = 0.0
        finally:
            if self.reading is not None and self.reading[0] == started:
                self.reading = None
        if started > self.seen:
            self.seen = started
            if left > 0:
                # counted from before the read: never past the row's end, so the next chunk
                # (which asks the row) does not find the relay free while this worker rests
                self.rest(left, since=started)


class RelayRests:
    def __init__(self, read: ReadOnlyDb, look_seconds: float = LOOK_SECONDS) -> None:
        self.read = read
        self.look = look_seconds
        self._orgs: dict[uuid.UUID, _OrgRest] = {}

    def _org(self, org_id: uuid.UUID) -> _OrgRest:
        org = self._orgs.get(org_id)
        if org is None:
            org = self._orgs[org_id] = _OrgRest(self, org_id)
        return org

    def rest(self, org_id: uuid.UUID, seconds: float, since: float | None = None) -> None:
        """This worker got the throttling answer: rest at once, before the shared backoff
        is even recorded (that happens with its chunk's outcomes)."""
        self._org(org_id).rest(seconds, since)

    def before_start(self, org_id: uuid.UUID) -> BeforeStart:
        """The org's check for ``Mailer.send``: TooLate while its relay rests, as this
        worker got told or as the shared row said at a read started at most
        ``LOOK_SECONDS`` ago."""
        return self._org(org_id).before_start
