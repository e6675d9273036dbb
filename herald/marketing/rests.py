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
from herald.mail.mailer import TooLate
from herald.marketing import relay

log = get_logger("herald.worker")
ReadOnlyDb = Callable[[Callable[[Session], Any]], Awaitable[Any]]

LOOK_SECONDS = 0.2  # how stale this worker's view of a relay's backoff may be


class RelayRests:
    def __init__(self, read: ReadOnlyDb, look_seconds: float = LOOK_SECONDS) -> None:
        self._read = read
        self._look = look_seconds
        self._until: dict[uuid.UUID, float] = {}  # time.monotonic(): nothing starts before
        self._seen: dict[uuid.UUID, float] = {}  # when the read behind ``_until`` started
        self._reading: dict[uuid.UUID, tuple[float, asyncio.Task[None]]] = {}

    def rest(self, org_id: uuid.UUID, seconds: float, since: float | None = None) -> None:
        """This worker got the throttling answer: rest at once, before the shared backoff
        is even recorded (that happens with its chunk's outcomes)."""
        until = (time.monotonic() if since is None else since) + seconds
        self._until[org_id] = max(self._until.get(org_id, 0.0), until)

    def resting(self, org_id: uuid.UUID) -> bool:
        return time.monotonic() < self._until.get(org_id, 0.0)

    async def check(self, org_id: uuid.UUID) -> None:
        """TooLate while the org's relay rests, as this worker got told or as the shared
        row said at a read started at most ``LOOK_SECONDS`` ago."""
        now = time.monotonic()
        if now - self._seen.get(org_id, float("-inf")) >= self._look:
            started, task = self._reading.get(org_id, (float("-inf"), None))
            if task is None or now - started >= self._look:
                started, task = now, asyncio.create_task(self._refresh(org_id, now))
                self._reading[org_id] = (started, task)
            await asyncio.shield(task)
        if self.resting(org_id):
            raise TooLate("the relay is resting after a throttling answer")

    async def _refresh(self, org_id: uuid.UUID, started: float) -> None:
        try:
            left = await self._read(functools.partial(relay.backoff_left, org_id=org_id))
        except SQLAlchemyError as exc:
            # The database is away: what is in flight goes on (its record will wait for
            # the database anyway); asked again at the next look, not per message.
            log.error("relay.rest_check_failed", org_id=str(org_id), error=str(exc)[:500])
            left = 0.0
        finally:
            entry = self._reading.get(org_id)
            if entry is not None and entry[0] == started:
                del self._reading[org_id]
        if started > self._seen.get(org_id, float("-inf")):
            self._seen[org_id] = started
            if left > 0:
                # counted from before the read: never past the row's end, so the next chunk
                # (which asks the row) does not find the relay free while this worker rests
                self.rest(org_id, left, since=started)
