"""Group commit for requests whose answer must mean "written": each waits for the commit
of the batch that holds it, and while one batch is being written the requests that arrive
wait and go together in the next. A flood costs one transaction per batch instead of one
per request, and a lone request is written at once.

Used by the one-click unsubscribe (herald.marketing.unsubscribe) and the mail services'
webhooks (herald.bounces.webhooks.inbox).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Writes one batch in one transaction (on a thread), returning each item's result in order.
WriteBatch = Callable[[list[T]], Sequence[R]]


class GroupCommit(Generic[T, R]):
    def __init__(self, write: WriteBatch[T, R], batch: int = 500) -> None:
        self.write = write
        self.batch = batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The item's result once its batch is committed; the batch's error if it failed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def close(self) -> None:
        """After the batches still waiting are written."""
        if self._writer is not None:
            await asyncio.wait([self._writer])

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.batch], self._waiting[self.batch :]
                try:
                    results = await asyncio.to_thread(self.write, [item for item, _ in batch])
                except Exception as exc:  # not hidden: each waiting request raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None
