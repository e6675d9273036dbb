"""Group commit: the writes of many concurrent requests in one transaction, each request
answered only after the commit of the batch that holds it.

While one batch is being written (in a thread), the requests that arrive wait and go
together in the next one: a flood costs one transaction per batch instead of one per
request, and a lone request is written within a few turns of the event loop. Used by the
one-click unsubscribes and the bounce receiver, whose answers (200, 250) promise that the
write is committed, and for tracked links' first clicks, whose reads go together the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``write`` takes a batch of items, commits, and returns one result per item, in order;
    a result that is an exception is raised to that item's caller alone. If ``write`` itself
    raises, every caller of the batch gets the error (nothing of it was committed)."""

    # Turns of the event loop a batch lets pass before it starts: the last batch's answers
    # go out and the requests already read join this one, rather than its thread competing
    # with them for the interpreter (docs/performance.md).
    JOIN_PASSES = 3

    def __init__(
        self,
        write: Callable[[list[T]], Sequence[R | BaseException]],
        batch_size: int = 500,
    ) -> None:
        self._write = write
        self.batch_size = batch_size
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Wait until ``item`` is committed; its result."""
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
                for _ in range(self.JOIN_PASSES):
                    await asyncio.sleep(0)
                size = self.batch_size
                batch, self._waiting = self._waiting[:size], self._waiting[size:]
                try:
                    results = await asyncio.to_thread(self._write, [item for item, _ in batch])
                except Exception as exc:  # not hidden: each waiting caller raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writer = None
