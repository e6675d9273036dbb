"""Bounce reports per second through `herald inbound`, and a bounce's cost on a big campaign.

1. Throughput: seeds an org (bounce address set), N contacts and a campaign launched to them
   whose sends are all DELIVERED; starts `herald inbound` on a free port; C concurrent SMTP
   clients each send their share of N Postfix-style hard-bounce DSNs, one per send, to its
   VERP return path (several transactions per connection, as an MTA's connection cache
   does). Reports/s = N / the time from the first connection to the last 250, then checks
   what was stored: N reports, N sends BOUNCED, the counters moved.
2. No scan: the statements a bounce runs, explained (EXPLAIN QUERY PLAN on SQLite, EXPLAIN
   on PostgreSQL), and the time of K bounces applied in process to a campaign of --big
   sends (default 1,000,000) against K applied to a campaign of 1,000.

    .venv/bin/python bench/inbound_throughput.py                      # throwaway SQLite file
    .venv/bin/python bench/inbound_throughput.py --reports 20000 --clients 50
    .venv/bin/python bench/inbound_throughput.py --big 0              # skip part 2
    .venv/bin/python bench/inbound_throughput.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import analyze, bench_org, free_port
from launch_speed import add_contacts
from sqlalchemy import func, select, text, update

HERALD = str(Path(sys.executable).with_name("herald"))
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database
BOUNCE_DOMAIN = "bounces.bench.example.com"


def seed(database_url: str, recipients: int) -> tuple[uuid.UUID, uuid.UUID, str]:
    """An org with a bounce address and a campaign whose ``recipients`` sends were all
    delivered, as the workers leave them: (org, campaign, bounce address)."""
    from herald.audit.service import CLI, system_actor
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow
    from herald.mailconfig.models import EmailConfig
    from herald.marketing.launch import launch_campaign
    from herald.marketing.models import Campaign, MarketingSend

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    address = f"b{uuid.uuid4().hex[:8]}@{BOUNCE_DOMAIN}"
    with unit_of_work(sessions) as session:
        org_id = bench_org(session, smtp_port=25)
        session.flush()
        session.execute(
            update(EmailConfig).where(EmailConfig.org_id == org_id).values(bounce_address=address)
        )
    with unit_of_work(sessions) as session:
        add_contacts(session, org_id, recipients)
    with unit_of_work(sessions) as session:
        campaign = Campaign(
            org_id=org_id, name="Bounce bench", subject="News", html_body="<p>Hi</p>",
            text_body="", audience={"type": "ALL"},
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    with unit_of_work(sessions) as session:
        launch_campaign(session, org_id, campaign_id, actor=system_actor(org_id, CLI))
    with unit_of_work(sessions) as session:
        now = utcnow()
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.campaign_id == campaign_id)
            .values(status="DELIVERED", attempts=1, delivered_at=now)
        )
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status="SENT", delivered=recipients, completed_at=now)
        )
    analyze(engine)
    engine.dispose()
    return org_id, campaign_id, address


def bounces_for(
    database_url: str, campaign_id: uuid.UUID, address: str, limit: int | None = None
) -> list[tuple[str, bytes]]:
    """(return path, DSN) for the campaign's sends (the first ``limit`` of them)."""
    from herald.db import make_engine
    from herald.dev.bouncer import HARD, delivery_status_notification
    from herald.mail.sendref import SendRefKeys, make_message_id, return_path
    from herald.marketing.models import MarketingSend

    keys = SendRefKeys.from_secret(SECRET)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(MarketingSend.id, MarketingSend.email)
            .where(MarketingSend.campaign_id == campaign_id)
            .order_by(MarketingSend.id)
            .limit(limit)
        ).all()
    engine.dispose()
    messages = []
    for send_id, email in rows:
        path = return_path(keys.tag, address, send_id)
        mid = make_message_id(keys.message_id, send_id, "bench.test")
        original = f"From: news@bench.test\r\nTo: {email}\r\nMessage-ID: {mid}\r\n\r\n".encode()
        dsn = delivery_status_notification(
            return_path=path, recipient=email, failure=HARD, original=original
        )
        messages.append((path, dsn))
    return messages


def _dot_stuffed(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """The last line of an SMTP reply."""
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


async def _client(port: int, messages: list[tuple[str, bytes]], per_connection: int) -> int:
    """Send ``messages``; how many were answered 250."""
    stored = 0
    for start in range(0, len(messages), per_connection):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _reply(reader)
        writer.write(b"EHLO mx.bench.example.com\r\n")
        await _reply(reader)
        for path, dsn in messages[start : start + per_connection]:
            writer.write(b"MAIL FROM:<>\r\n")
            await _reply(reader)
            writer.write(f"RCPT TO:<{path}>\r\n".encode())
            await _reply(reader)
            writer.write(b"DATA\r\n")
            await _reply(reader)
            body = _dot_stuffed(dsn)
            writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            if (await _reply(reader)).startswith(b"250"):
                stored += 1
        writer.write(b"QUIT\r\n")
        await _reply(reader)
        writer.close()
    return stored


async def _send_all(port: int, messages: list[tuple[str, bytes]], clients: int, per: int) -> int:
    shares = [messages[i::clients] for i in range(clients)]
    return sum(await asyncio.gather(*(_client(port, share, per) for share in shares)))


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("herald inbound exited")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("herald inbound did not listen")


# The ceiling: aiosmtpd alone, answering 250 to every message without reading it, in its
# own process like `herald inbound`: what this machine's SMTP handling allows right now.
NULL_RECEIVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Accept:
    async def handle_RCPT(self, server, session, envelope, address, options):
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(Accept()), "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def timed_run(
    command: list[str], env: dict[str, str], port: int, args: Any, messages: Any, copies: int = 1
) -> tuple[float, int]:
    """(seconds, messages answered 250) for the clients against ``copies`` servers that
    ``command`` starts on one port."""
    processes = [subprocess.Popen(command, env=env) for _ in range(copies)]
    try:
        for process in processes:
            _wait_listening(port, process)
        time.sleep(0.5 if copies > 1 else 0)  # every copy listening, not just the first
        started = time.perf_counter()
        answered = asyncio.run(_send_all(port, messages, args.clients, args.per_connection))
        return time.perf_counter() - started, answered
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def throughput(args: argparse.Namespace, database_url: str) -> None:
    print(f"seeding {args.reports:,} delivered sends ...", flush=True)
    org_id, campaign_id, address = seed(database_url, args.reports)
    messages = bounces_for(database_url, campaign_id, address)
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": SECRET,
        "HERALD_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    command = [HERALD, "inbound", "--host", "127.0.0.1", "--port", str(port)]
    elapsed, answered = timed_run(command, env, port, args, messages, args.processes)
    stored, bounced, counters = stored_figures(database_url, org_id, campaign_id)
    size = sum(len(m) for _, m in messages) // len(messages)
    rate = len(messages) / elapsed
    print(
        f"herald inbound x{args.processes}: {len(messages):,} DSNs (~{size:,} bytes each) "
        f"from {args.clients} clients, {args.per_connection} per connection: {elapsed:.2f} s, "
        f"{rate:,.0f} reports/s; answered 250: {answered:,}; stored: {stored:,} reports, "
        f"{bounced:,} sends BOUNCED; campaign {counters}"
    )
    ceiling_port = free_port()
    null = [sys.executable, "-c", NULL_RECEIVER, str(ceiling_port)]
    ceiling, _ = timed_run(null, env, ceiling_port, args, messages)
    ceiling_rate = len(messages) / ceiling
    print(
        f"ceiling (aiosmtpd answering 250 to everything, same clients): {ceiling:.2f} s, "
        f"{ceiling_rate:,.0f} messages/s; herald inbound at {rate / ceiling_rate:.0%} of it"
    )
    if not (answered == stored == bounced == len(messages)):
        raise SystemExit("not everything answered 250 was stored and applied")


def stored_figures(
    database_url: str, org_id: uuid.UUID, campaign_id: uuid.UUID
) -> tuple[int, int, dict[str, int]]:
    from herald.bounces.models import BounceReport
    from herald.db import make_engine
    from herald.marketing.models import Campaign, MarketingSend

    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = conn.scalar(
            select(func.count()).select_from(BounceReport).where(BounceReport.org_id == org_id)
        )
        bounced = conn.scalar(
            select(func.count())
            .select_from(MarketingSend)
            .where(MarketingSend.campaign_id == campaign_id, MarketingSend.status == "BOUNCED")
        )
        row = conn.execute(
            select(Campaign.delivered, Campaign.failed, Campaign.bounced).where(
                Campaign.id == campaign_id
            )
        ).one()
    engine.dispose()
    return int(stored or 0), int(bounced or 0), dict(row._mapping)


def no_scan(args: argparse.Namespace, database_url: str) -> None:
    """K bounces on a campaign of --big sends against K on one of 1,000, in process."""
    from herald.bounces.ingest import Incoming, ingest
    from herald.bounces.models import Source
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.mail.sendref import SendRefKeys

    keys = SendRefKeys.from_secret(SECRET)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    timings = {}
    for size in (1000, args.big):
        print(f"seeding a campaign of {size:,} delivered sends ...", flush=True)
        org_id, campaign_id, address = seed(database_url, size)
        messages = bounces_for(database_url, campaign_id, address, args.sample)
        started = time.perf_counter()
        for path, dsn in messages:
            with unit_of_work(sessions) as session:
                ingest(session, keys, Incoming(Source.SMTP, dsn, envelope_to=path), org_id)
        timings[size] = (time.perf_counter() - started) / len(messages)
        print(
            f"  {len(messages)} bounces, one transaction each: {timings[size] * 1000:.2f} ms each"
        )
    print(f"ratio big/small: {timings[args.big] / timings[1000]:.2f}")
    explain(engine, campaign_id, org_id)
    engine.dispose()


def explain(engine: Any, campaign_id: uuid.UUID, org_id: uuid.UUID) -> None:
    """The plans of what a bounce runs on the sends and the campaign row."""
    sqlite = engine.dialect.name == "sqlite"
    cid = campaign_id.hex if sqlite else str(campaign_id)
    org = org_id.hex if sqlite else str(org_id)
    statements = {
        "the send, by id": "SELECT status FROM marketing_sends WHERE id = 42",
        "the send BOUNCED": "UPDATE marketing_sends SET status = 'BOUNCED' WHERE id = 42 "
        "AND status = 'DELIVERED'",
        "the campaign's counters": "UPDATE campaigns SET delivered = delivered - 1, "  # noqa: S608
        f"failed = failed + 1, bounced = bounced + 1 WHERE id = '{cid}'",
        "an address's delivered sends (matching, soft bounces in a row)": "SELECT id, status "  # noqa: S608
        f"FROM marketing_sends WHERE org_id = '{org}' AND lower(email) = 'x@example.com' "
        "AND status IN ('DELIVERED', 'BOUNCED') ORDER BY id DESC LIMIT 3",
    }
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    with engine.connect() as conn:
        for name, sql in statements.items():
            plan = [" ".join(str(c) for c in row) for row in conn.execute(text(prefix + sql))]
            print(f"plan, {name}: " + " | ".join(plan))
            conn.rollback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-connection", type=int, default=50)
    parser.add_argument(
        "--processes", type=int, default=1, help="`herald inbound` processes on the one port"
    )
    parser.add_argument("--big", type=int, default=1_000_000, help="0: skip the no-scan part")
    parser.add_argument("--sample", type=int, default=300, help="bounces timed per campaign")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    directory = None
    database_url = args.database_url
    if database_url is None:
        directory = tempfile.mkdtemp(prefix="herald-inbound-bench-")
        database_url = f"sqlite:///{directory}/bench.db"
    from herald import migrate
    from herald.log import configure_logging

    configure_logging("WARNING")  # the in-process part logs a line per bounce at INFO
    try:
        migrate.upgrade(database_url)
        throughput(args, database_url)
        if args.big:
            no_scan(args, database_url)
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
