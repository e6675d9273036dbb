"""A buffer of public hits (the pixel's opens; link clicks later): collected in memory and
written in batches from one task, so a flood costs one transaction per flush, not per hit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.db import unit_of_work
from herald.log import get_logger
from herald.runtime import Runtime

log = get_logger("herald.tracking")

FLUSH_SIZE = 5000
MAX_PENDING = 200_000


class _Hit(Protocol):
    """What a hit must be: hashable (duplicates count once) and sortable (each flush
    writes its rows in one order, so two processes' flushes cannot deadlock)."""

    def __hash__(self) -> int: ...
    def __lt__(self, other: Any, /) -> bool: ...


H = TypeVar("H", bound=_Hit)

# Writes one flush's distinct hits in the session's transaction; returns how many counted.
WriteHits = Callable[[Session, list[H]], int]


class HitRecorder(Generic[H]):
    """Collects hits and has ``write`` store them every ``interval`` seconds, or sooner
    once ``FLUSH_SIZE`` are waiting. ``hit`` is O(1) and does no I/O.

    A flush that fails on the database keeps its hits for the next one. Memory is bounded:
    past ``MAX_PENDING`` waiting hits (the database away for long), new ones are dropped.
    """

    def __init__(
        self, runtime: Runtime, write: WriteHits[H], kind: str, interval: float = 1.0
    ) -> None:
        self.runtime = runtime
        self.write = write
        self.kind = kind  # the log events' prefix: "opens.flushed", "opens.flush_failed"
        self.interval = interval
        self._pending: set[H] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def hit(self, hit: H) -> None:
        if len(self._pending) >= MAX_PENDING:
            return
        self._pending.add(hit)
        if len(self._pending) >= FLUSH_SIZE:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """The last hits written before the process ends."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        hits, self._pending = sorted(self._pending), set()

        def write() -> int:
            with unit_of_work(self.runtime.sessions) as session:
                return self.write(session, hits)

        try:
            counted = await asyncio.to_thread(write)
        except SQLAlchemyError as exc:
            self._pending.update(hits)
            log.error(
                f"{self.kind}.flush_failed", error=type(exc).__name__, pending=len(self._pending)
            )
            return
        log.debug(f"{self.kind}.flushed", hits=len(hits), counted=counted)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()
