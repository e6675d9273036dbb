"""Which org a webhook URL's key names, asked before a call's body is read (the contract:
a body is read only once its caller is known). Kept for a moment, so that a burst of calls
to one URL costs one query; the store checks each call again with fresh keys
(herald.bounces.webhooks.inbox), so a regenerated key stops working there at once."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from herald.db import unit_of_work
from herald.mailconfig.inbound import WebhookAccount, webhook_accounts
from herald.runtime import Runtime

KEPT_SECONDS = 2.0
KEPT_KEYS = 10_000


class WebhookKeys:
    def __init__(self, runtime: Runtime, kept_seconds: float = KEPT_SECONDS) -> None:
        self.runtime = runtime
        self.kept_seconds = kept_seconds
        self._known: OrderedDict[str, tuple[float, WebhookAccount | None]] = OrderedDict()
        self._reading: dict[str, asyncio.Future[WebhookAccount | None]] = {}

    async def account(self, key: str) -> WebhookAccount | None:
        """The account of the org whose key this is; None for no org's."""
        if not key or len(key) > 64:
            return None
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[0] < self.kept_seconds:
            return known[1]
        reading = self._reading.get(key)
        if reading is None:  # concurrent calls with one key share the query
            reading = asyncio.ensure_future(asyncio.to_thread(self._read, key))
            self._reading[key] = reading
            reading.add_done_callback(lambda _done: self._reading.pop(key, None))
        found = await asyncio.shield(reading)
        self._known[key] = (time.monotonic(), found)
        self._known.move_to_end(key)
        while len(self._known) > KEPT_KEYS:
            self._known.popitem(last=False)
        return found

    def _read(self, key: str) -> WebhookAccount | None:
        with unit_of_work(self.runtime.sessions, write=False) as session:
            return webhook_accounts(session, self.runtime.settings, {key}).get(key)
