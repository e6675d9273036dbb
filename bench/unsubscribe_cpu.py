"""The one-click unsubscribe POST's CPU per request in-process: Herald's ASGI app called
directly (no uvicorn, no sockets, no wrk competing for the cores) with many concurrent
first-time POSTs (RFC 8058's body), against bare Starlette's GIF in the same process, with
the CPU split between the event loop's thread and the group commit's thread. An A/B against
another checkout is one command each:

    .venv/bin/python bench/unsubscribe_cpu.py
    PYTHONPATH=/work/main .venv/bin/python bench/unsubscribe_cpu.py      # main's herald
    .venv/bin/python bench/unsubscribe_cpu.py --database-url postgresql+psycopg://u@host/db
    .venv/bin/python bench/unsubscribe_cpu.py --profile                  # cProfile, the loop

Every token is posted once (a send's first POST); afterwards it checks that exactly the
posted sends are unsubscribed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from click_cpu import AGENT, cycle, scope, seeded_bench
from tracked_campaign import Seeded, counts
from tracking import bare_app

BODY = b"List-Unsubscribe=One-Click"


def post_scope(path: str) -> dict[str, Any]:
    """What uvicorn hands the app for wrk's POST."""
    found = scope("POST", path)
    found["headers"] = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", AGENT),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(BODY)).encode("ascii")),
    ]
    return found


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def drive(
    app: Any, paths: Iterator[str], count: int, concurrency: int, post: bool
) -> dict[int, int]:
    """``count`` requests, ``concurrency`` in flight; the statuses answered."""
    statuses: dict[int, int] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    left = count
    make = post_scope if post else (lambda path: scope("GET", path))

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await app(make(next(paths)), _receive, send)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses


class ThreadClock:
    """The CPU spent in the group commit's write, on whichever thread runs it."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.lock = threading.Lock()

    def wrap(self, function: Callable[..., Any], profile: cProfile.Profile | None) -> Any:
        def run(*args: Any) -> Any:
            started = time.thread_time()
            try:
                return profile.runcall(function, *args) if profile else function(*args)
            finally:
                with self.lock:
                    self.cpu += time.thread_time() - started

        return run


async def measure(
    app: Any,
    paths: Iterator[str],
    count: int,
    concurrency: int,
    post: bool,
    clock: ThreadClock | None,
    profile: cProfile.Profile | None = None,
) -> tuple[float, float, float]:
    """(CPU µs, the batch thread's CPU µs, wall µs) per request of one run."""
    gc.collect()
    written = clock.cpu if clock else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    statuses = await drive(app, paths, count, concurrency, post)
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if set(statuses) - {200}:
        sys.exit(f"unexpected answers {statuses}")
    batch = (clock.cpu - written) if clock else 0.0
    return cpu / count * 1e6, batch / count * 1e6, wall / count * 1e6


async def run(args: argparse.Namespace) -> None:
    from herald.app import create_app
    from herald.cli.serve import tune_collector

    database_url, seeded = seeded_sends(args)  # first: the settings name the database
    tokens = seeded.tokens
    app = create_app()
    tune_collector()  # as `herald serve` does
    bare = bare_app()
    gifs = [f"/t/{t}.gif" for t in tokens[:2000]]
    fresh = iter(f"/u/{t}" for t in tokens)
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    thread_profile = cProfile.Profile(time.thread_time) if args.profile_thread else None
    clock = ThreadClock()
    results: dict[str, list[tuple[float, float, float]]] = {}
    async with app.router.lifespan_context(app):
        batches = app.state.unsubscriber._batches  # the bench's own look, not the app's
        batches._write = clock.wrap(batches._write, thread_profile)
        await drive(app, fresh, args.requests // 4, args.concurrency, True)  # warm-up
        posted = args.requests // 4
        for _ in range(args.rounds):
            results.setdefault("bare Starlette GIF", []).append(
                await measure(bare, cycle(gifs), args.requests, args.concurrency, False, None)
            )
            results.setdefault("one-click POST, first", []).append(
                await measure(app, fresh, args.requests, args.concurrency, True, clock, profile)
            )
            posted += args.requests
    _, _, unsubscribed, opted_out = counts(database_url, seeded)
    exact = unsubscribed == opted_out == posted
    print(
        f"\nposted {posted:,}, sends unsubscribed {unsubscribed:,}, contacts opted out "
        f"{opted_out:,}: {'exact' if exact else 'NOT EXACT'}"
    )
    bare_cpu = min(cpu for cpu, _, _ in results["bare Starlette GIF"])
    print(
        f"{'target':<24} {'CPU µs/req (best; all)':>30} {'batch thread':>14} "
        f"{'loop':>8} {'wall µs':>9} {'CPU ratio':>10}"
    )
    for name, runs in results.items():
        best = min(runs)
        every = " ".join(f"{c:.0f}" for c, _, _ in sorted(runs))
        print(
            f"{name:<24} {best[0]:>8.1f} ({every:>19}) {best[1]:>14.1f} "
            f"{best[0] - best[1]:>8.1f} {best[2]:>9.1f} {bare_cpu / best[0]:>10.3f}"
        )
    for name, prof in [("event loop", profile), ("batch thread", thread_profile)]:
        if prof:
            print(f"--- {name}")
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.lines)


def seeded_sends(args: argparse.Namespace) -> tuple[str, Seeded]:
    needed = args.requests * args.rounds + args.requests // 4
    if args.sends < needed:
        sys.exit(f"--sends must be at least {needed:,}")
    return seeded_bench(args.database_url, args.sends, "unsubscribe-cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=40_000)
    parser.add_argument("--requests", type=int, default=6_000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop")
    parser.add_argument("--profile-thread", action="store_true", help="cProfile the batches")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=45)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
