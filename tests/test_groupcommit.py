"""The shared group commit (herald/groupcommit.py): how its batches gather."""

from __future__ import annotations

import asyncio
import threading

from herald.groupcommit import GroupCommit


def test_requests_read_within_a_few_turns_of_the_loop_join_the_batch():
    """A batch starts only after the event loop has turned a few times: what arrived in the
    meantime (another connection's request, read on the next turn) is written with it
    instead of waiting for a batch of its own."""
    batches: list[list[str]] = []

    def write(items: list[str]) -> list[str]:
        batches.append(items)
        return [item.upper() for item in items]

    async def scenario() -> list[str]:
        commit: GroupCommit[str, str] = GroupCommit(write)

        async def arriving_after(turns: int, item: str) -> str:
            for _ in range(turns):
                await asyncio.sleep(0)
            return await commit.submit(item)

        answers = await asyncio.gather(
            commit.submit("first"),
            arriving_after(1, "one turn later"),
            arriving_after(2, "two turns later"),
        )
        await commit.close()
        return list(answers)

    assert asyncio.run(scenario()) == ["FIRST", "ONE TURN LATER", "TWO TURNS LATER"]
    assert batches == [["first", "one turn later", "two turns later"]]


def test_a_batch_arriving_while_one_is_written_waits_and_goes_in_the_next():
    """Still a group commit: what arrives while a batch is being written goes together in
    the next batch, each caller answered after its own batch's commit."""
    batches: list[list[int]] = []
    writing, release = threading.Event(), threading.Event()

    def write(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            writing.set()
            release.wait(5)
        return items

    async def scenario() -> list[int]:
        commit: GroupCommit[int, int] = GroupCommit(write)
        first = asyncio.ensure_future(commit.submit(0))
        while not writing.is_set():
            await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(commit.submit(n)) for n in (1, 2, 3)]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(each.done() for each in later)
        release.set()
        answers = await asyncio.gather(first, *later)
        await commit.close()
        return list(answers)

    assert asyncio.run(scenario()) == [0, 1, 2, 3]
    assert batches == [[0], [1, 2, 3]]
