"""Other orgs' writes during a large CSV import: logins (POST /api/auth/login) of one org and
RFC 8058 one-click POSTs (POST /u/{token}) of another org's launched campaign, timed while a
third org's MANAGER imports N contacts over the API.

Starts `herald serve --no-worker` on a free loopback port, on a throwaway database seeded
with a campaign of delivered sends (as bench/tracking.py seeds it) and the users; then
measures two clients for a few seconds, then imports a generated CSV of N rows while they
log in and post one-click unsubscribes, one request at a time each, until the import
answers. Reports each client's latencies (p50, p99, max) before and during the import, and
the import's own time and counts.

    .venv/bin/python bench/import_contention.py
    .venv/bin/python bench/import_contention.py --rows 20000
    .venv/bin/python bench/import_contention.py --database-url postgresql+psycopg://user@host/db
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from common import free_port
from tracking import SECRET, seed, stop, wait_for_port

HERALD = str(Path(sys.executable).with_name("herald"))
PASSWORD = "bench password, not for production"  # noqa: S105 - a throwaway benchmark database


def make_users(database_url: str) -> tuple[str, str]:
    """The importing org's MANAGER and another org's USER who keeps logging in: emails."""
    from herald.audit import service as audit
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.orgs.service import create_org, create_user

    engine = make_engine(database_url)
    emails = []
    with unit_of_work(make_session_factory(engine)) as session:
        for role in ("MANAGER", "USER"):
            org = create_org(session, f"Bench {role} {uuid.uuid4().hex[:6]}", ["marketing"])
            email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@bench.example.com"
            actor = audit.system_actor(org.id, audit.CLI)
            create_user(session, org, email, PASSWORD, role, actor=actor)
            emails.append(email)
    engine.dispose()
    return emails[0], emails[1]


def write_csv(path: Path, rows: int) -> Path:
    statuses = ("LEAD", "PROSPECT", "CUSTOMER", "INACTIVE")
    with path.open("w") as out:
        out.write("email,firstName,lastName,companyName,status,marketingOptOut\n")
        for i in range(rows):
            out.write(f"user{i}@import.example.com,First{i},Last{i},Company {i % 97},")
            out.write(f"{statuses[i % 4]},{'yes' if i % 50 == 0 else 'no'}\n")
    return path


class Timed:
    """One client making requests back to back until told to stop; the latencies, seconds."""

    def __init__(self, name: str, request: callable) -> None:  # type: ignore[valid-type]
        self.name, self.request = name, request
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            started = time.perf_counter()
            status = self.request(n)
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            n += 1

    def reset(self) -> None:
        self.latencies = []
        self.statuses = {}

    def line(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return f"{self.name:<28} no requests"
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (
            f"{self.name:<28} {len(ms):>6} requests  p50 {statistics.median(ms):7.1f} ms  "
            f"p99 {p99:7.1f} ms  max {ms[-1]:7.1f} ms  statuses {self.statuses}"
        )


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-import-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    os.environ["HERALD_SECRET_KEY"] = SECRET
    os.environ["HERALD_DATABASE_URL"] = database_url
    print(f"Seeding {args.sends:,} delivered sends on {database_url.split('://')[0]} ...")
    tokens = seed(database_url, args.sends).tokens
    manager, user = make_users(database_url)
    csv_file = write_csv(workdir / "contacts.csv", args.rows)
    print(f"CSV of {args.rows:,} rows: {csv_file.stat().st_size / 1e6:.1f} MB")

    port = free_port()
    log = open(workdir / "herald.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [HERALD, "serve", "--no-worker", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, server, "herald serve")
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=120) as client:
            login = client.post("/api/auth/login", json={"email": manager, "password": PASSWORD})
            login.raise_for_status()
            bearer = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        logins_client = httpx.Client(base_url=url, timeout=120)
        posts_client = httpx.Client(base_url=url, timeout=120)

        def log_in(_n: int) -> int:
            body = {"email": user, "password": PASSWORD}
            return logins_client.post("/api/auth/login", json=body).status_code

        def one_click(n: int) -> int:
            return posts_client.post(
                f"/u/{tokens[n % len(tokens)]}",
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).status_code

        clients = [Timed("login (another org)", log_in), Timed("one-click POST", one_click)]
        for timed in clients:
            timed.thread.start()
        time.sleep(1)  # warm-up
        for timed in clients:
            timed.reset()
        time.sleep(args.idle)
        print(f"Without an import ({args.idle:.0f} s):")
        for timed in clients:
            print("  " + timed.line())
            timed.reset()
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=600) as importer, csv_file.open("rb") as f:
            answer = importer.post(
                "/api/crm/contacts/import",
                files={"file": ("contacts.csv", f, "text/csv")},
                headers=bearer,
            )
        took = time.perf_counter() - started
        for timed in clients:
            timed.stopping.set()
            timed.thread.join()
        logins_client.close()
        posts_client.close()
        if answer.status_code != 200:
            print(f"The import answered {answer.status_code}: {answer.text[:300]}")
            return 1
        result = answer.json()
        print(
            f"Import of {args.rows:,} rows: {took:.1f} s, created {result['created']:,}, "
            f"updated {result['updated']:,}, skipped {result['skipped']:,}"
        )
        print("During the import:")
        for timed in clients:
            print("  " + timed.line())
    finally:
        stop(server)
        log.close()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the imported CSV")
    parser.add_argument("--sends", type=int, default=20_000, help="one-click tokens seeded")
    parser.add_argument("--idle", type=float, default=5, help="seconds measured before")
    parser.add_argument("--database-url", default=None)
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
