"""A worker's SMTP connections, one pool per org, each as large as the connection slots
the worker holds to that org's relay (herald.marketing.relay): together, all workers keep
at most the org's ``maxConnections`` open.

Slots are leased like sends: renewed with the worker's other leases, given back when the
pool has been idle a moment or the worker stops, and by the lease running out when it dies.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.db import db_now
from herald.log import get_logger
from herald.mail.mailer import Mailer, MailerFactory
from herald.mail.smtp import SmtpSettings
from herald.mailconfig.account import RelayLimits
from herald.marketing import relay

log = get_logger("herald.worker")
Db = Callable[[Callable[[Session], Any]], Awaitable[Any]]

IDLE_SECONDS = 2.0  # a pool unused this long closes and gives its slots back
ASK_AGAIN_SECONDS = 1.0  # a worker short of slots asks again at most this often per org


class RelayPools:
    def __init__(
        self,
        db: Db,
        owner: str,
        concurrency: int,
        lease_seconds: float,
        factory: MailerFactory,
    ) -> None:
        self._db = db
        self.owner = owner
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self._factory = factory
        self._pools: dict[uuid.UUID, tuple[SmtpSettings, Mailer]] = {}
        self._slots: dict[uuid.UUID, int] = {}
        self._asked: dict[uuid.UUID, float] = {}
        self._busy: Counter[uuid.UUID] = Counter()
        self._last_used: dict[uuid.UUID, float] = {}
        self._renewed = time.monotonic()

    def busy(self, org_id: uuid.UUID, delta: int) -> None:
        """A batch of the org starts (+1) or ends (-1) on this worker."""
        self._busy[org_id] += delta
        self._last_used[org_id] = time.monotonic()

    def skip_orgs(self) -> frozenset[uuid.UUID]:
        """Orgs whose relay had no slot for this worker a moment ago: claims skip them."""
        now = time.monotonic()
        return frozenset(
            org
            for org, asked in self._asked.items()
            if self._slots.get(org, 0) == 0 and now - asked < ASK_AGAIN_SECONDS
        )

    async def pool_for(
        self, org_id: uuid.UUID, smtp: SmtpSettings, limits: RelayLimits
    ) -> Mailer | None:
        """The org's pool, sized to the slots this worker holds; None while it holds none."""
        current = self._pools.get(org_id)
        if current is not None and current[0] != smtp:  # the org's settings changed
            await current[1].close()
            current = None
        if current is None:
            current = (smtp, self._factory(smtp, self._slots.get(org_id, 0)))
            self._pools[org_id] = current
        pool = current[1]
        wanted = min(self.concurrency, limits.connections)
        held = self._slots.get(org_id, 0)
        asked = self._asked.get(org_id)
        due = asked is None or time.monotonic() - asked >= ASK_AGAIN_SECONDS
        if held > wanted or (held < wanted and (held == 0 or due)):
            self._asked[org_id] = time.monotonic()
            held = await self._db(
                lambda s: relay.acquire_connections(
                    s, org_id, self.owner, wanted, limits.connections, self.lease_seconds, db_now(s)
                )
            )
            self._slots[org_id] = held
            self._renewed = time.monotonic()
        if pool.size != held:
            pool.resize(held)
        return pool if held else None

    async def renew(self) -> None:
        """Extend this worker's slots (the upkeep calls it every third of a lease, with its
        other leases). Slots that could not be renewed for half a lease are dropped, their
        connections closed (those in use once their message is done): once the lease runs
        out another worker may take them."""
        if not any(self._slots.values()):
            return
        try:
            await self._db(
                lambda s: relay.renew_connections(s, self.owner, self.lease_seconds, db_now(s))
            )
            self._renewed = time.monotonic()
        except SQLAlchemyError as exc:  # the database is away: the slots may lapse
            log.error("relay.connections_not_renewed", owner=self.owner, error=str(exc)[:300])
            if time.monotonic() - self._renewed >= self.lease_seconds / 2:
                log.error("relay.connections_dropped", owner=self.owner)
                for org_id, (_smtp, pool) in self._pools.items():
                    self._slots[org_id] = 0
                    pool.resize(0)

    async def reap_idle(self) -> None:
        """Close the pools no batch has used for IDLE_SECONDS and give their slots back."""
        now = time.monotonic()
        idle = [
            org
            for org in self._pools
            if self._busy[org] <= 0 and now - self._last_used.get(org, 0) >= IDLE_SECONDS
        ]
        for org_id in idle:
            _smtp, pool = self._pools.pop(org_id)
            await pool.close()
            if self._slots.pop(org_id, 0):
                release = functools.partial(
                    relay.release_connections, owner=self.owner, org_id=org_id
                )
                await self._db(release)

    async def close(self) -> None:
        """Close every pool and give every slot back (the worker is stopping)."""
        for _smtp, pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        if any(self._slots.values()):
            self._slots.clear()
            await self._db(lambda s: relay.release_connections(s, self.owner))
