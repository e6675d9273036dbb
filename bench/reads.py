"""Read latency with a big campaign: /stats, the campaign list and the email log.

Seeds an org, an ADMIN and one campaign of N sends (default 1,000,000: mostly DELIVERED,
some opened, some FAILED, UNKNOWN, QUEUED and in flight, each with its contact) plus a few
smaller campaigns, inserted in bulk as a finished launch and workers would leave them
(counters included). Then starts `herald serve --no-worker` on a free port, logs in, and
times each read with one plain HTTP client, sequentially, after a warm-up.

    .venv/bin/python bench/reads.py                      # throwaway SQLite file
    .venv/bin/python bench/reads.py --requests 500
    .venv/bin/python bench/reads.py --database-url postgresql+psycopg://herald@127.0.0.1/bench

A database that already holds the benchmark's org is reused as it is (migrations applied),
so a second run skips the seeding: keep a SQLite file with `--database-url sqlite:///x.db`.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from common import analyze, free_port
from sqlalchemy import insert, select

HERALD = str(Path(sys.executable).with_name("herald"))
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database
ORG_NAME = "Reads bench"
ADMIN_EMAIL = "admin@reads-bench.example.com"
ADMIN_PASSWORD = "reads-bench-password"  # noqa: S105
BIG_NAME = "Big campaign"
PAGE_SIZE = 50  # the log page's rows per page

FIRST = ["Ann", "José", "Zoë", "Mohammed", "Łukasz", "Ingrid", "Chloé", "Sven", "美咲", "Olu"]
LAST = ["Lee", "García", "Müller", "Nakamura", "Öztürk", "Smith", "Dubois", "Kowalski"]


def send_status(i: int) -> str:
    """A spread-out mix: 89% DELIVERED, 4% FAILED, 1% UNKNOWN, 5.9% QUEUED, 0.1% SENDING."""
    slot = (i * 7919) % 1000
    if slot < 890:
        return "DELIVERED"
    if slot < 930:
        return "FAILED"
    if slot < 940:
        return "UNKNOWN"
    if slot < 999:
        return "QUEUED"
    return "SENDING"


def bulk_insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (an INSERT of many rows there is several times slower)."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    cursor = session.connection().connection.cursor()
    with cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def seed_campaign(
    sessions: Any, org_id: uuid.UUID, name: str, sends: int, start: int, status: str
) -> uuid.UUID:
    """A launched campaign of ``sends`` sends (contacts ``start``... of the org), counters set."""
    from herald.crm.models import Contact
    from herald.db import unit_of_work, utcnow
    from herald.marketing.models import Campaign, MarketingSend

    now = utcnow()
    with unit_of_work(sessions) as session:
        campaign = Campaign(
            org_id=org_id, name=name, subject="Hello {{firstName|there}}",
            html_body="<p>Hello {{firstName|there}}</p>", text_body="", audience={"type": "ALL"},
            status=status, launched_at=now, completed_at=now if status == "SENT" else None,
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    counts = {"DELIVERED": 0, "FAILED": 0, "UNKNOWN": 0, "opens": 0}
    chunk = 20_000
    for first in range(start, start + sends, chunk):
        contacts, rows = [], []
        for i in range(first, min(first + chunk, start + sends)):
            email = f"r{i:07d}@reads-bench.test"
            contact_id = uuid.uuid4()
            first_name, last_name = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
            contacts.append(
                {
                    "id": contact_id, "org_id": org_id, "email": email, "email_key": email,
                    "first_name": first_name, "last_name": last_name,
                    "company_name": f"Company {i % 97}", "status": "CUSTOMER",
                    "marketing_opt_out": False, "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
            state = send_status(i)
            delivered = state == "DELIVERED"
            opened = delivered and i % 4 == 0
            counts[state] = counts.get(state, 0) + 1
            counts["opens"] += opened
            rows.append(
                {
                    "org_id": org_id, "campaign_id": campaign_id, "contact_id": contact_id,
                    "email": email, "first_name": first_name, "last_name": last_name,
                    "company_name": f"Company {i % 97}", "token": secrets.token_hex(32),
                    "status": state, "attempts": 0 if state == "QUEUED" else 1,
                    "error": "550 5.1.1 No such user" if state == "FAILED" else None,
                    "next_attempt_at": now, "created_at": now,
                    "delivered_at": now if delivered else None,
                    "opened_at": now if opened else None,
                }
            )  # fmt: skip
        with unit_of_work(sessions) as session:
            bulk_insert(session, Contact, contacts)
            bulk_insert(session, MarketingSend, rows)
        if sends >= 100_000:
            print(f"  {first - start + len(rows):,} sends", flush=True)
    with unit_of_work(sessions) as session:
        row = session.get(Campaign, campaign_id)
        assert row is not None
        row.recipients, row.delivered = sends, counts["DELIVERED"]
        row.failed, row.unknown, row.opens = counts["FAILED"], counts["UNKNOWN"], counts["opens"]
    return campaign_id


def arrange(database_url: str, sends: int, others: int) -> uuid.UUID:
    """The big campaign's id: seeded now, or found from an earlier run."""
    os.environ["HERALD_SECRET_KEY"] = SECRET
    from herald import migrate
    from herald.audit.service import CLI, system_actor
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import Campaign
    from herald.orgs.models import Org
    from herald.orgs.service import create_org, create_user

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions, write=False) as session:
        found = session.execute(
            select(Campaign.id, Campaign.recipients)
            .join(Org, Org.id == Campaign.org_id)
            .where(Org.name == ORG_NAME, Campaign.name == BIG_NAME)
        ).first()
    if found is not None:
        print(f"Reusing the seeded database: {found.recipients:,} sends.")
        engine.dispose()
        return uuid.UUID(str(found.id))
    print(f"Seeding {sends:,} sends and {others} other campaigns ...", flush=True)
    started = time.perf_counter()
    with unit_of_work(sessions) as session:
        org = create_org(session, ORG_NAME, ["marketing"])
        actor = system_actor(org.id, CLI)
        create_user(session, org, ADMIN_EMAIL, ADMIN_PASSWORD, "ADMIN", actor=actor)
        org_id = org.id
    next_contact = 0
    for n in range(others // 2):
        seed_campaign(sessions, org_id, f"Earlier news {n}", 200, next_contact, "SENT")
        next_contact += 200
    campaign_id = seed_campaign(sessions, org_id, BIG_NAME, sends, next_contact, "SENDING")
    with unit_of_work(sessions) as session:
        for n in range(others - others // 2):
            session.add(Campaign(org_id=org_id, name=f"Draft {n}", subject="Soon"))
    analyze(engine)
    print(f"Seeded in {time.perf_counter() - started:.0f} s.")
    engine.dispose()
    return campaign_id


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": SECRET,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_BASE_URL": f"http://127.0.0.1:{port}",
    }
    args = [HERALD, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(args, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            sys.exit("herald serve exited")
        time.sleep(0.1)
    server.terminate()
    sys.exit("herald serve did not answer /healthz")


def login(client: httpx.Client) -> str:
    response = client.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["accessToken"])


def timed(
    client: httpx.Client, url: str, page: bool, warmup: int, requests: int, budget: float
) -> list[float]:
    """Latencies in ms of ``requests`` GETs of ``url`` (a fresh token for each endpoint),
    fewer (at least 5) for an endpoint so slow that they would take over ``budget`` seconds."""
    token = login(client)
    if page:
        client.cookies.set("herald_access", token, domain="127.0.0.1", path="/")
        headers = {}
    else:
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + budget
    for _ in range(warmup):
        client.get(url, headers=headers).raise_for_status()
        if time.monotonic() > deadline:
            break
    deadline = time.monotonic() + budget
    latencies: list[float] = []
    for _ in range(requests):
        if len(latencies) >= 5 and time.monotonic() > deadline:
            break
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(math.ceil(fraction * len(ordered)) - 1, len(ordered) - 1)]


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="herald-reads-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'reads.db'}"
    server = None
    try:
        campaign_id = arrange(database_url, args.sends, args.campaigns)
        port = free_port()
        server = start_server(database_url, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            token = login(client)
            stats = client.get(
                f"/api/marketing/campaigns/{campaign_id}/stats",
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            last = max(math.ceil(stats["recipients"] / PAGE_SIZE), 1)
            one_person = f"r{args.sends // 2:07d}@"
            log = f"/marketing/campaigns/{campaign_id}/log"
            api = f"/api/marketing/campaigns/{campaign_id}"
            endpoints = [
                ("floor: GET /healthz", "/healthz", False),
                ("stats (API)", f"{api}/stats", False),
                ("campaign list (API)", "/api/marketing/campaigns", False),
                ("log page", log, True),
                ("log page ?status=FAILED", f"{log}?status=FAILED", True),
                ("log page ?status=QUEUED", f"{log}?status=QUEUED", True),
                (f"log page, last (page {last:,})", f"{log}?page={last}", True),
                (f"log page ?q={one_person} (1 match)", f"{log}?q={one_person}", True),
                ("log page ?q=Müller (1 in 8)", f"{log}?q=M%C3%BCller", True),
                ("sends (API)", f"{api}/sends", False),
            ]
            print(f"\n{stats['recipients']:,} sends; {args.requests} requests each, sequential")
            print(f"{'endpoint':44} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
            for name, url, page in endpoints:
                latencies = timed(client, url, page, args.warmup, args.requests, args.budget)
                p50 = statistics.median(latencies)
                p95, p99 = percentile(latencies, 0.95), percentile(latencies, 0.99)
                shown = f"  (n={len(latencies)})" if len(latencies) < args.requests else ""
                print(f"{name:44} {p50:8.1f} {p95:8.1f} {p99:8.1f}{shown}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=1_000_000, help="sends of the big campaign")
    parser.add_argument("--campaigns", type=int, default=30, help="other campaigns (half SENT)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument(
        "--budget", type=float, default=60, help="seconds per endpoint before stopping early"
    )
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
