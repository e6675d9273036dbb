"""The tracked-link redirect's CPU per request in-process: Herald's ASGI app called directly
(no uvicorn, no sockets, no wrk competing for the cores) with many concurrent requests,
against a bare Starlette 302 in the same process. On a shared machine CPU per request is
steadier than req/s, and an A/B against another checkout is one command each:

    .venv/bin/python bench/click_cpu.py
    PYTHONPATH=/work/main .venv/bin/python bench/click_cpu.py      # main's herald package
    .venv/bin/python bench/click_cpu.py --database-url postgresql+psycopg://u@host/db
    .venv/bin/python bench/click_cpu.py --profile cached            # cProfile of one target

Each target's CPU includes the buffered writes it caused (the recorders are flushed inside
the timed window) and the first clicks' reads (their threads are this process's).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracked_campaign import Seeded, seed
from tracking import SECRET, bare_app

AGENT = (
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36"
)


def scope(method: str, path: str) -> dict[str, Any]:
    """What uvicorn hands the app for a request of wrk's shape."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", AGENT)],
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def drive(app: Any, paths: Iterator[str], count: int, concurrency: int) -> dict[int, int]:
    """``count`` GETs, ``concurrency`` in flight; the statuses answered."""
    statuses: dict[int, int] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    left = count

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await app(scope("GET", next(paths)), _receive, send)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses


def cycle(paths: list[str]) -> Iterator[str]:
    while True:
        yield from paths


async def measure(
    name: str,
    app: Any,
    paths: Iterator[str],
    count: int,
    concurrency: int,
    flush: Callable[[], Any] | None,
    profile: cProfile.Profile | None = None,
) -> tuple[float, float]:
    """(CPU µs, wall µs) per request of one run, the recorders' flush included."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    statuses = await drive(app, paths, count, concurrency)
    if flush:
        await flush()
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if set(statuses) - {302}:
        sys.exit(f"{name}: unexpected answers {statuses}")
    return cpu / count * 1e6, wall / count * 1e6


async def run(args: argparse.Namespace) -> None:
    from herald.app import create_app
    from herald.cli.serve import tune_collector

    tokens = seeded_tokens(args)  # first: the settings name the database
    app = create_app()
    tune_collector()  # as `herald serve` does
    bare = bare_app()
    cached = tokens[: args.cached_tokens]
    fresh = tokens[args.cached_tokens :]
    # as bench/tracking.py's walk: each request the next send and the next of links 1-3
    links = [f"/c/{t}/{j % 3 + 1}" for j, t in enumerate(cached * 3)]
    one_link = [f"/c/{t}/1" for t in cached]
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    results: dict[str, list[tuple[float, float]]] = {}
    async with app.router.lifespan_context(app):
        recorder = app.state.click_recorder
        if args.no_write:
            recorder.write = lambda session, hits: 0
        thread_profiles = {}
        if args.profile_threads:  # the clicks' writes and the first clicks' reads
            reads = app.state.link_targets._reads
            thread_profiles = {
                "write": cProfile.Profile(time.thread_time),
                "read": cProfile.Profile(time.thread_time),
            }
            recorder.write = profiled(recorder.write, thread_profiles["write"])
            reads._write = profiled(reads._write, thread_profiles["read"])

        async def flush() -> None:
            await recorder.flush()

        await drive(app, cycle(links), len(links), args.concurrency)  # warm-up: sends kept
        await flush()
        fresh_paths = iter(f"/c/{t}/1" for t in fresh)
        for _ in range(args.rounds):
            targets: list[tuple[str, Any, Iterator[str], Callable[[], Any] | None]] = [
                ("bare Starlette 302", bare, cycle(links), None),
                ("click, cached send", app, cycle(links), flush),
                ("click, cached, one link", app, cycle(one_link), flush),
                ("click, first of a send", app, fresh_paths, flush),
            ]
            for name, target, paths, flusher in targets:
                prof = profile if args.profile and args.profile in name else None
                results.setdefault(name, []).append(
                    await measure(
                        name, target, paths, args.requests, args.concurrency, flusher, prof
                    )
                )
    bare_cpu = min(cpu for cpu, _ in results["bare Starlette 302"])
    header = f"{'CPU µs/req (best, all)':>36} {'wall µs/req':>14} {'CPU vs bare':>12}"
    print(f"\n{'target':<26} {header}")
    for name, runs in results.items():
        cpus = sorted(cpu for cpu, _ in runs)
        walls = [wall for _, wall in runs]
        every = " ".join(f"{c:.0f}" for c in cpus)
        print(
            f"{name:<26} {cpus[0]:>10.1f} ({every:>22}) {min(walls):>14.1f} "
            f"{bare_cpu / cpus[0]:>12.2f}"
        )
    for name, prof in [("event loop", profile), *thread_profiles.items()]:
        if prof:
            print(f"--- {name}")
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.lines)


def profiled(function: Callable[..., Any], profile: cProfile.Profile) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        return profile.runcall(function, *args)

    return run


def seeded_tokens(args: argparse.Namespace) -> list[str]:
    needed = args.cached_tokens + args.requests * args.rounds
    if args.sends < needed:
        sys.exit(f"--sends must be at least {needed:,} (cached tokens + first clicks)")
    return seeded_bench(args.database_url, args.sends, "click-cpu")[1].tokens


def seeded_bench(database_url: str | None, sends: int, name: str) -> tuple[str, Seeded]:
    """A database (a throwaway SQLite file unless one is given) named in the settings, with
    ``sends`` delivered sends; their tokens shuffled."""
    workdir = Path(tempfile.mkdtemp(prefix=f"herald-bench-{name}-"))
    database_url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    os.environ["HERALD_SECRET_KEY"] = SECRET
    os.environ["HERALD_DATABASE_URL"] = database_url
    os.environ.setdefault("HERALD_LOG_LEVEL", "WARNING")
    seeded = seed(database_url, sends)
    secrets.SystemRandom().shuffle(seeded.tokens)
    return database_url, seeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=40_000)
    parser.add_argument("--cached-tokens", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=6_000, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--no-write", action="store_true", help="the request path alone: clicks not written"
    )
    parser.add_argument("--profile", default=None, help="cProfile the targets with this word")
    parser.add_argument(
        "--profile-threads", action="store_true", help="cProfile the writes and reads"
    )
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=45)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
