"""A sending worker inside the web process (`herald serve` without --no-worker), on a
thread with its own event loop so that sending never slows the pages down."""

from __future__ import annotations

import asyncio
import threading

from herald.marketing.worker import Worker
from herald.runtime import Runtime


class EmbeddedWorker:
    def __init__(self, runtime: Runtime, concurrency: int = 4) -> None:
        self.worker = Worker(runtime, concurrency=concurrency)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="herald-worker", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.worker.run())

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(timeout)
