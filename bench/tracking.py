"""The public endpoints under load: Herald's open pixel and one-click unsubscribe POST against
a bare Starlette endpoint returning the same GIF, all measured with wrk in one run.

Starts, on free loopback ports, a bare Starlette app (one route, the same 43-byte GIF and
headers, under uvicorn with the options `herald serve` uses) and `herald serve --no-worker`
on a throwaway database seeded with a campaign of N delivered sends; then runs wrk with the
same settings against each target, with a Lua script that walks a file of real tokens (and
once of unknown ones), each target once per round. Afterwards it checks that the unique
opens in the database equal the distinct tokens the pixel runs hit, and the opt-outs the
distinct tokens posted, and it prints issue #12's targets (pixel >= 0.5x and one-click POST
>= 0.25x of bare Starlette's req/s, p99 < 100 ms, both counts exact), met or not per round.

    apt-get install wrk
    .venv/bin/python bench/tracking.py
    .venv/bin/python bench/tracking.py --rounds 3 --sends 400000
    .venv/bin/python bench/tracking.py --database-url postgresql+psycopg://user@host/db

On a machine with few cores wrk competes with the server for the CPU: compare figures from
one round only (the same wrk settings are used for every target). The server's CPU per
request, and its ratio to bare Starlette's, is steadier when other work shares the machine.
On PostgreSQL give it an empty database: it adds --sends sends each run.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from common import free_port

HERALD = str(Path(sys.executable).with_name("herald"))
BARE, PIXEL, UNKNOWN = (
    "bare Starlette GIF",
    "Herald pixel, real tokens",
    "Herald pixel, unknown tokens",
)
FRESH, REPEAT = "Herald one-click POST, first", "Herald one-click POST, repeat"
# Issue #12's targets: req/s at least this share of bare Starlette's in the same run, and a
# p99 under P99_MS, at 64 connections.
TARGETS = [(PIXEL, 0.5), (UNKNOWN, 0.5), (FRESH, 0.25)]
P99_MS = 100.0
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database

# Each wrk thread walks the token file with a stride of the thread count, starting at its own
# id, and reports how many requests it made: the distinct tokens hit follow from that.
LUA = r"""
local tokens, method, body, headers, prefix, suffix = {}, "GET", nil, {}, "", ""
local threads, nthreads = {}, 1
counter, id = 0, 0  -- globals: thread:set and thread:get reach them

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  if args[2] == "unsubscribe" then
    method, prefix = "POST", "/u/"
    body = "List-Unsubscribe=One-Click"
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  else
    prefix, suffix = "/t/", ".gif"
  end
  nthreads = tonumber(args[3])
end

function request()
  local i = (counter * nthreads + id) % #tokens
  counter = counter + 1
  return wrk.format(method, prefix .. tokens[i + 1] .. suffix, headers, body)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("thread %d made %d\n", thread:get("id"), thread:get("counter")))
  end
end
"""


def bare_app() -> object:
    """One route: the GIF with the headers Herald's pixel sends, nothing else."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from herald.marketing.public import PIXEL, PIXEL_HEADERS

    async def pixel(request: object) -> Response:
        return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)

    return Starlette(routes=[Route("/t/{name:path}", pixel)])


def serve_bare(port: int) -> None:
    """uvicorn with the options of `herald serve` (herald/cli/serve.py)."""
    import uvicorn

    from herald.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        bare_app(),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)  # uvicorn's graceful shutdown: the last flush
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Seeded:
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    tokens: list[str]


def seed(database_url: str, n: int) -> Seeded:
    """An org, N contacts and a SENT campaign whose N sends were all delivered."""
    from sqlalchemy import insert

    from herald import migrate
    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow
    from herald.marketing.models import Campaign, MarketingSend
    from herald.orgs.service import create_org

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    now = utcnow()
    with unit_of_work(sessions) as session:
        org = create_org(session, f"Bench {uuid.uuid4().hex[:6]}", ["marketing"])
        campaign = Campaign(
            org_id=org.id, name="Bench", subject="Spring offers", html_body="<p>Hi</p>",
            status="SENT", recipients=n, delivered=n, launched_at=now, completed_at=now,
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        org_id, campaign_id = org.id, campaign.id
    tokens = [secrets.token_hex(32) for _ in range(n)]
    tag = uuid.uuid4().hex[:6]
    for start in range(0, n, 10_000):
        chunk = range(start, min(start + 10_000, n))
        contact_ids = [uuid.uuid4() for _ in chunk]
        emails = [f"c{i}-{tag}@bench.test" for i in chunk]
        with unit_of_work(sessions) as session:
            session.execute(
                insert(Contact),
                [
                    {"id": cid, "org_id": org_id, "email": email, "email_key": email,
                     "status": "CUSTOMER", "marketing_opt_out": False,
                     "created_at": now, "updated_at": now}
                    for cid, email in zip(contact_ids, emails, strict=True)
                ],
            )  # fmt: skip
            session.execute(
                insert(MarketingSend),
                [
                    {"org_id": org_id, "campaign_id": campaign_id, "contact_id": cid,
                     "email": email, "token": tokens[i], "status": "DELIVERED", "attempts": 1,
                     "next_attempt_at": now, "created_at": now, "delivered_at": now}
                    for i, cid, email in zip(chunk, contact_ids, emails, strict=True)
                ],
            )  # fmt: skip
    engine.dispose()
    return Seeded(org_id, campaign_id, tokens)


def counts(database_url: str, seeded: Seeded) -> tuple[int, int, int, int]:
    """(campaign.opens, sends opened, sends unsubscribed, contacts opted out)."""
    from sqlalchemy import func, select

    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import Campaign, MarketingSend

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine), write=False) as session:
            campaign_id = seeded.campaign_id
            sends = select(func.count()).where(MarketingSend.campaign_id == campaign_id)
            return (
                session.scalar(select(Campaign.opens).where(Campaign.id == campaign_id)) or 0,
                session.scalar(sends.where(MarketingSend.opened_at.is_not(None))) or 0,
                session.scalar(sends.where(MarketingSend.unsubscribed_at.is_not(None))) or 0,
                session.scalar(
                    select(func.count())
                    .select_from(Contact)
                    .where(Contact.org_id == seeded.org_id, Contact.marketing_opt_out)
                )
                or 0,
            )
    finally:
        engine.dispose()


def stray_unsubscribes(database_url: str, seeded: Seeded, *posted: list[str]) -> int:
    """Sends unsubscribed whose token was never posted (must be none)."""
    from sqlalchemy import select

    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import MarketingSend

    allowed = {token for tokens in posted for token in tokens}
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine), write=False) as session:
            done = session.scalars(
                select(MarketingSend.token).where(
                    MarketingSend.campaign_id == seeded.campaign_id,
                    MarketingSend.unsubscribed_at.is_not(None),
                )
            )
            return sum(1 for token in done if token not in allowed)
    finally:
        engine.dispose()


@dataclass
class Run:
    rps: float
    made: list[int]  # requests each wrk thread made
    errors: str
    cpu_per_request: float  # the server's CPU time (all its threads), in seconds
    p99_ms: float  # wrk's 99th percentile of latency


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def walked(runs: list[Run], size: int) -> set[int]:
    """The token indices the Lua script's walks covered, given each thread's request count
    (every run starts at the top of its file)."""
    return {
        (j * len(run.made) + tid) % size
        for run in runs
        for tid, c in enumerate(run.made)
        for j in range(min(c, size))
    }


def distinct_hit(runs: list[Run], size: int) -> int:
    return len(walked(runs, size))


def wrk(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    url: str,
    tokens: Path,
    mode: str,
    script: Path,
    seconds: int,
) -> Run:
    cpu = cpu_seconds(server.pid)
    out = subprocess.run(
        ["wrk", "--latency", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
         "-s", str(script), url, "--", str(tokens), mode, str(args.threads)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(server.pid) - cpu
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    made = [int(m) for m in re.findall(r"thread \d+ made (\d+)", out)]
    errors = " ".join(
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    )
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99_ms = float(p99.group(1)) * _TO_MS[p99.group(2)] if p99 else float("nan")
    return Run(rps, made, errors, cpu / max(done, 1), p99_ms)


_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-tracking-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    os.environ["HERALD_SECRET_KEY"] = SECRET
    os.environ["HERALD_DATABASE_URL"] = database_url
    print(f"Seeding {args.sends:,} delivered sends on {database_url.split('://')[0]} ...")
    seeded = seed(database_url, args.sends)
    # The pixel walks the first tokens and the repeated POST the last ones, each a small file
    # gone round many times, so every token in it is hit; the first-time POST walks the
    # tokens in between once, each hit at most once, a slice of its own per round (it needs
    # --sends large enough).
    open_tokens = seeded.tokens[: args.open_tokens]
    repeat_tokens = seeded.tokens[-args.repeat_tokens :]
    fresh_tokens = seeded.tokens[args.open_tokens : -args.repeat_tokens]
    per_round = len(fresh_tokens) // args.rounds
    fresh = [fresh_tokens[k * per_round : (k + 1) * per_round] for k in range(args.rounds)]
    unknown_tokens = [secrets.token_hex(32) for _ in range(5000)]
    files = {
        "opens": write_lines(workdir / "opens.txt", open_tokens),
        "unknown": write_lines(workdir / "unknown.txt", unknown_tokens),
        "repeat": write_lines(workdir / "repeat.txt", repeat_tokens),
        **{f"fresh{k}": write_lines(workdir / f"fresh{k}.txt", part)
           for k, part in enumerate(fresh)},
    }  # fmt: skip
    script = workdir / "tokens.lua"
    script.write_text(LUA)

    bare_port, herald_port = free_port(), free_port()
    logs = {name: open(workdir / f"{name}.log", "wb") for name in ("bare", "herald")}  # noqa: SIM115
    bare = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(bare_port)],
        stdout=logs["bare"], stderr=subprocess.STDOUT,
    )  # fmt: skip
    herald = subprocess.Popen(
        [HERALD, "serve", "--no-worker", "--port", str(herald_port)],
        stdout=logs["herald"], stderr=subprocess.STDOUT,
    )  # fmt: skip
    rounds: list[dict[str, Run]] = []
    warmups: list[dict[str, Run]] = []
    try:
        wait_for_port(bare_port, bare, "bare Starlette")
        wait_for_port(herald_port, herald, "herald serve")
        bare_url, herald_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{herald_port}"
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} "
            f"round(s); tokens: {len(open_tokens):,} pixel, {per_round:,} first-time POST per "
            f"round, {len(repeat_tokens):,} repeated POST"
        )
        for k in range(args.rounds):
            targets = [
                (BARE, bare, bare_url, "opens", "pixel"),
                (PIXEL, herald, herald_url, "opens", "pixel"),
                (UNKNOWN, herald, herald_url, "unknown", "pixel"),
                (FRESH, herald, herald_url, f"fresh{k}", "unsubscribe"),
                (REPEAT, herald, herald_url, "repeat", "unsubscribe"),
            ]
            rounds.append({})
            warmups.append({})
            for name, server, url, tokens, mode in targets:
                # the first-time POST warms up on unknown tokens, so its walk starts afresh
                warm = "unknown" if name == FRESH else tokens
                warmups[k][name] = wrk(args, server, url, files[warm], mode, script, args.warmup)
                time.sleep(0.5)
                rounds[k][name] = wrk(args, server, url, files[tokens], mode, script, args.duration)
                time.sleep(0.5)
        time.sleep(2.5)  # let the recorder flush the last buffered opens
    finally:
        stop(herald)
        stop(bare)
        for log in logs.values():
            log.close()

    for k, results in enumerate(rounds):
        print_round(k, results)
    ok = check_counts(
        args, database_url, seeded, rounds, warmups, open_tokens, fresh, repeat_tokens
    )
    print_targets(rounds, ok)
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"(files kept in {workdir})")
    return 0 if ok else 1


def print_round(k: int, results: dict[str, Run]) -> None:
    """req/s and server CPU per request, each also as a ratio to bare Starlette's: on a
    machine shared with other work the CPU ratio is the steadier of the two."""
    bare = results[BARE]
    print(
        f"\nround {k + 1}\n{'target':<32} {'req/s':>9} {'vs bare':>8} {'p99':>10} "
        f"{'server CPU/req':>15} {'CPU vs bare':>12}"
    )
    for name, result in results.items():
        extra = f"  ({result.errors})" if result.errors else ""
        cpu = f"{result.cpu_per_request * 1e6:,.0f} µs"
        cpu_ratio = bare.cpu_per_request / result.cpu_per_request
        print(
            f"{name:<32} {result.rps:>9,.0f} {result.rps / bare.rps:>8.2f} "
            f"{result.p99_ms:>7.1f} ms {cpu:>15} {cpu_ratio:>12.2f}{extra}"
        )


def check_counts(
    args: argparse.Namespace,
    database_url: str,
    seeded: Seeded,
    rounds: list[dict[str, Run]],
    warmups: list[dict[str, Run]],
    open_tokens: list[str],
    fresh: list[list[str]],
    repeat_tokens: list[str],
) -> bool:
    """Unique opens equal the distinct tokens the pixel hit; opt-outs the distinct tokens
    posted, none other."""
    pixel_runs = [each[PIXEL] for each in warmups + rounds]
    opened_expected = distinct_hit(pixel_runs, len(open_tokens))
    # Disjoint token sets. The walks that went round their files hit every token in them;
    # the first-time walks' last requests (one per connection at most) may have been cut
    # off when wrk stopped, so their count lies between what was answered and what was made.
    repeat_expected = distinct_hit([each[REPEAT] for each in warmups + rounds], len(repeat_tokens))
    fresh_walked = [
        tokens[i]
        for tokens, results in zip(fresh, rounds, strict=True)
        for i in walked([results[FRESH]], len(tokens))
    ]
    fresh_made = len(fresh_walked)
    in_flight = args.connections * len(rounds)
    opens, opened, unsubscribed, opted_out = counts(database_url, seeded)
    fresh_counted = unsubscribed - repeat_expected
    ok = (
        opens == opened == opened_expected
        and unsubscribed == opted_out
        and fresh_made - in_flight <= fresh_counted <= fresh_made
        and stray_unsubscribes(database_url, seeded, fresh_walked, repeat_tokens) == 0
    )
    for tokens, results in zip(fresh, rounds, strict=True):
        if max(results[FRESH].made) * args.threads >= len(tokens):
            print(
                f"warning: a first-time POST went round its {len(tokens):,} tokens: raise --sends"
            )
    for name, size in ((PIXEL, len(open_tokens)), (REPEAT, len(repeat_tokens))):
        if (
            min(min(results[name].made) for results in rounds)
            < size // args.threads + args.connections
        ):
            print(f"warning: {name} did not go round its token file many times: use fewer tokens")
    print(
        f"\nunique opens: campaign {opens:,}, sends opened {opened:,}, "
        f"distinct tokens hit {opened_expected:,}\n"
        f"unsubscribes: sends {unsubscribed:,}, contacts opted out {opted_out:,}; "
        f"repeated POST: {repeat_expected:,} distinct tokens; first-time POST: "
        f"{fresh_counted:,} of {fresh_made:,} requests made (the last <= {in_flight} in flight), "
        f"none outside the tokens posted"
    )
    return ok


def print_targets(rounds: list[dict[str, Run]], exact: bool) -> None:
    """Issue #12's targets, each round judged on its own against its own bare Starlette."""
    print(f"\ntargets ({len(rounds)} round(s); req/s against bare Starlette in the same round)")
    all_met = exact
    for name, ratio in TARGETS:
        ratios = [results[name].rps / results[BARE].rps for results in rounds]
        p99s = [results[name].p99_ms for results in rounds]
        met = sum(r >= ratio and p < P99_MS for r, p in zip(ratios, p99s, strict=True))
        all_met = all_met and met == len(rounds)
        print(
            f"  {name:<30} ratio {' '.join(f'{r:.2f}' for r in ratios)} (>= {ratio}), "
            f"p99 {' '.join(f'{p:.0f}' for p in p99s)} ms (< {P99_MS:.0f}): "
            f"met in {met} of {len(rounds)}"
        )
    print(f"  unique opens and opt-outs exact: {'yes' if exact else 'NO'}")
    print(f"all targets met: {'yes' if all_met else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=200_000)
    parser.add_argument("--open-tokens", type=int, default=5_000)
    parser.add_argument("--repeat-tokens", type=int, default=2_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every target this many times"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
