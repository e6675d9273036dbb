"""The public endpoints under load: Herald's open pixel, one-click unsubscribe POST and
tracked-link redirect against a bare Starlette endpoint returning the same GIF (and a bare
302), all measured with wrk in one run.

Starts, on free loopback ports, a bare Starlette app (two routes, the same 43-byte GIF and
headers and a 302 with the redirect's headers, under uvicorn with the options `herald
serve` uses) and `herald serve --no-worker` on a throwaway database seeded with a campaign
of N sends delivered an hour ago, with three tracked links; then runs wrk with the same
settings (and a browser's user agent) against each target, with a Lua script that walks a
file of real tokens (and once of unknown ones). The cached click run walks a few thousand
sends round and round, over links 1-3 in turn (so the same send's links are often clicked
within seconds: bursts, turned machine), then the same sends' link 1 only; the first-click
run walks other sends once, link 1.
Afterwards it checks that the unique opens in the database equal the distinct tokens the
pixel and click runs hit, the opt-outs the distinct tokens posted, and that every click was
stored once with the sends' and links' counters equal to a recount (bench/engagement_counts.py).

    apt-get install wrk
    .venv/bin/python bench/tracking.py
    .venv/bin/python bench/tracking.py --sends 200000 --duration 10 --connections 64
    .venv/bin/python bench/tracking.py --database-url postgresql+psycopg://user@host/db

On a machine with few cores wrk competes with the server for the CPU: compare figures from
one run only (the same wrk settings are used for every target).
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from engagement_counts import LINKS, ClickFlood, check

HERALD = str(Path(sys.executable).with_name("herald"))
FRESH, REPEAT = "Herald one-click POST, first", "Herald one-click POST, repeat"
BARE_302, CLICK_CACHED, CLICK_ONE_LINK, CLICK_FIRST = (
    "bare Starlette 302",
    "Herald click, cached send",
    "Herald click, cached, one link",
    "Herald click, first of a send",
)
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database

# Each wrk thread walks the token file with a stride of the thread count, starting at its own
# id, and reports how many requests it made: the distinct tokens hit follow from that.
LUA = r"""
local tokens, method, body, headers, prefix, suffix, links = {}, "GET", nil, {}, "", "", 0
local threads, nthreads = {}, 1
counter, id = 0, 0  -- globals: thread:set and thread:get reach them

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    .. "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
  if args[2] == "unsubscribe" then
    method, prefix = "POST", "/u/"
    body = "List-Unsubscribe=One-Click"
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  elseif args[2] == "click" then
    prefix, links = "/c/", 3
  elseif args[2] == "click1" then
    prefix, suffix = "/c/", "/1"
  else
    prefix, suffix = "/t/", ".gif"
  end
  nthreads = tonumber(args[3])
end

function request()
  local i = (counter * nthreads + id) % #tokens
  counter = counter + 1
  local tail = suffix
  if links > 0 then tail = "/" .. (counter % links + 1) end
  return wrk.format(method, prefix .. tokens[i + 1] .. tail, headers, body)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("thread %d made %d\n", thread:get("id"), thread:get("counter")))
  end
end
"""


def bare_app() -> object:
    """The GIF with the headers Herald's pixel sends, and a 302 with the redirect's."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from herald.marketing.public import PIXEL, PIXEL_HEADERS, REDIRECT_HEADERS

    async def pixel(request: object) -> Response:
        return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)

    async def redirect(request: object) -> Response:
        location = {"Location": "https://shop.example/spring?who=ann%40example.com"}
        return Response(status_code=302, headers={**location, **REDIRECT_HEADERS})

    return Starlette(
        routes=[Route("/t/{name:path}", pixel), Route("/c/{token}/{n:path}", redirect)]
    )


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
    """An org, N contacts and a SENT campaign with three tracked links whose N sends were
    all delivered an hour ago (so a click is no scanner's for its timing alone)."""
    from sqlalchemy import insert

    from herald import migrate
    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow
    from herald.marketing.links import store_links
    from herald.marketing.models import Campaign, MarketingSend
    from herald.orgs.service import create_org

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    now = utcnow() - dt.timedelta(hours=1)
    with unit_of_work(sessions) as session:
        org = create_org(session, f"Bench {uuid.uuid4().hex[:6]}", ["marketing"])
        campaign = Campaign(
            org_id=org.id, name="Bench", subject="Spring offers",
            html_body="".join(f'<a href="{url}">{i}</a>' for i, url in enumerate(LINKS)),
            status="SENT", recipients=n, delivered=n, launched_at=now, completed_at=now,
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        store_links(session, campaign)
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
    done: int = 0  # requests answered


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
    return Run(rps, made, errors, cpu / max(done, 1), p99_ms, done)


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
    # tokens in between once, each hit at most once (it needs --sends large enough).
    open_tokens = seeded.tokens[: args.open_tokens]
    repeat_tokens = seeded.tokens[-args.repeat_tokens :]
    # the clicks: a small file gone round (its sends' links kept), then first clicks
    click_end = args.open_tokens + args.click_tokens
    click_tokens = seeded.tokens[args.open_tokens : click_end]
    middle = seeded.tokens[click_end : -args.repeat_tokens]
    first_clicks, fresh_tokens = middle[: len(middle) // 2], middle[len(middle) // 2 :]
    unknown_tokens = [secrets.token_hex(32) for _ in range(5000)]
    files = {
        "opens": write_lines(workdir / "opens.txt", open_tokens),
        "unknown": write_lines(workdir / "unknown.txt", unknown_tokens),
        "fresh": write_lines(workdir / "fresh.txt", fresh_tokens),
        "repeat": write_lines(workdir / "repeat.txt", repeat_tokens),
        "clicks": write_lines(workdir / "clicks.txt", click_tokens),
        "first_clicks": write_lines(workdir / "first_clicks.txt", first_clicks),
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
    results: dict[str, Run] = {}
    warmups: dict[str, Run] = {}
    try:
        wait_for_port(bare_port, bare, "bare Starlette")
        wait_for_port(herald_port, herald, "herald serve")
        bare_url, herald_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{herald_port}"
        targets = [
            ("bare Starlette GIF", bare, bare_url, "opens", "pixel"),
            ("Herald pixel, real tokens", herald, herald_url, "opens", "pixel"),
            ("Herald pixel, unknown tokens", herald, herald_url, "unknown", "pixel"),
            (BARE_302, bare, bare_url, "clicks", "click"),
            (CLICK_CACHED, herald, herald_url, "clicks", "click"),
            (CLICK_ONE_LINK, herald, herald_url, "clicks", "click1"),
            (CLICK_FIRST, herald, herald_url, "first_clicks", "click1"),
            (FRESH, herald, herald_url, "fresh", "unsubscribe"),
            (REPEAT, herald, herald_url, "repeat", "unsubscribe"),
        ]
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; tokens: "
            f"{len(open_tokens):,} pixel, {len(click_tokens):,} cached clicks, "
            f"{len(first_clicks):,} first clicks, {len(fresh_tokens):,} first-time POST, "
            f"{len(repeat_tokens):,} repeated POST"
        )
        for name, server, url, tokens, mode in targets:
            # the first-time runs warm up on unknown tokens, so their walks start afresh
            warm = "unknown" if tokens in ("fresh", "first_clicks") else tokens
            warmups[name] = wrk(args, server, url, files[warm], mode, script, args.warmup)
            time.sleep(0.5)
            results[name] = wrk(args, server, url, files[tokens], mode, script, args.duration)
            time.sleep(0.5)
        time.sleep(2.5)  # let the recorder flush the last buffered opens
    finally:
        stop(herald)
        stop(bare)
        for log in logs.values():
            log.close()

    # CPU per request: what the server spent, whatever else ran on the machine meanwhile;
    # "vs bare": against the bare GIF, the clicks against the bare 302
    print(f"\n{'target':<32} {'req/s':>10} {'vs bare':>8} {'p99':>9} {'server CPU/req':>15}")
    for name, result in results.items():
        base = results[BARE_302 if "click" in name else "bare Starlette GIF"].rps
        extra = f"  ({result.errors})" if result.errors else ""
        cpu = f"{result.cpu_per_request * 1e6:,.0f} µs"
        p99 = f"{result.p99_ms:.1f} ms"
        print(
            f"{name:<32} {result.rps:>10,.0f} {result.rps / base:>8.2f} {p99:>9} {cpu:>15}{extra}"
        )

    pixel = "Herald pixel, real tokens"
    opened_expected = distinct_hit([warmups[pixel], results[pixel]], len(open_tokens))
    # Disjoint token sets. The walks that went round their files hit every token in them;
    # the first-time walk's last requests (one per connection at most) may have been cut
    # off when wrk stopped, so its count lies between what was answered and what was made.
    repeat_expected = distinct_hit([warmups[REPEAT], results[REPEAT]], len(repeat_tokens))
    fresh_walked = [fresh_tokens[i] for i in walked([results[FRESH]], len(fresh_tokens))]
    fresh_made = len(fresh_walked)
    in_flight = args.connections
    cached = [warmups[CLICK_CACHED], results[CLICK_CACHED]]
    cached += [warmups[CLICK_ONE_LINK], results[CLICK_ONE_LINK]]
    clicks = [*cached, results[CLICK_FIRST]]
    flood = ClickFlood(
        cached={click_tokens[i] for i in walked(cached, len(click_tokens))},
        first={first_clicks[i] for i in walked([results[CLICK_FIRST]], len(first_clicks))},
        in_flight=args.connections,
        # the first-click run's warm-up went to unknown tokens: nothing stored
        answered=sum(run.done for run in clicks),
        made=sum(sum(run.made) for run in clicks),
    )
    clicks_ok, clicks_summary, clicked = check(database_url, seeded.campaign_id, flood)
    opens, opened, unsubscribed, opted_out = counts(database_url, seeded)
    fresh_counted = unsubscribed - repeat_expected
    ok = (
        clicks_ok
        # the pixel's and the clicks' sends are apart; every clicked send is opened (check())
        and opens == opened == opened_expected + clicked
        and unsubscribed == opted_out
        and fresh_made - in_flight <= fresh_counted <= fresh_made
        and stray_unsubscribes(database_url, seeded, fresh_walked, repeat_tokens) == 0
    )
    if max(results[FRESH].made) * args.threads >= len(fresh_tokens):
        print(
            f"warning: the first-time POST went round its {len(fresh_tokens):,} tokens: "
            "raise --sends"
        )
    for name, size in (
        (pixel, len(open_tokens)),
        (REPEAT, len(repeat_tokens)),
        (CLICK_CACHED, len(click_tokens)),
    ):
        if min(results[name].made) < size // args.threads + args.connections:
            print(f"warning: {name} did not go round its token file many times: use fewer tokens")
    print(
        f"\nunique opens: campaign {opens:,}, sends opened {opened:,}, "
        f"distinct pixel tokens hit {opened_expected:,} (the rest opened by their clicks)\n"
        f"{clicks_summary}\n"
        f"unsubscribes: sends {unsubscribed:,}, contacts opted out {opted_out:,}; "
        f"repeated POST: {repeat_expected:,} distinct tokens; first-time POST: "
        f"{fresh_counted:,} of {fresh_made:,} requests made (the last <= {in_flight} in flight), "
        f"none outside the tokens posted\n"
        f"exact: {'yes' if ok else 'NO'}"
    )
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"(files kept in {workdir})")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=200_000)
    parser.add_argument("--open-tokens", type=int, default=5_000)
    parser.add_argument("--repeat-tokens", type=int, default=2_000)
    parser.add_argument("--click-tokens", type=int, default=2_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
