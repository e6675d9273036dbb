"""End-to-end sending throughput: N contacts, launch, `herald worker` processes, until SENT.

Mail goes to Postfix's smtp-sink on loopback (Debian package `postfix`; the postfix daemon is
never started). The same run measures smtp-source against the same sink: the ceiling of
this machine's loopback SMTP, so the ratio says how close Herald gets.

    .venv/bin/python bench/send_throughput.py --contacts 20000 --workers 2
    .venv/bin/python bench/send_throughput.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import bench_org, free_port
from sqlalchemy import insert, select

HERALD = str(Path(sys.executable).with_name("herald"))
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database

HTML = (
    """<html><head><style>
  body { font-family: Helvetica, Arial, sans-serif; color: #222; }
  .card { border: 1px solid #ddd; padding: 16px; border-radius: 8px; }
  h1 { color: #2f5bea; font-size: 22px; } p { line-height: 1.5; }
</style></head><body>
<div class="card"><h1>Hello {{firstName|there}}!</h1>
<p>Spring is here at {{companyName|your company}}, and so is our new catalogue. """
    + ("We picked the season's best offers for you, with free delivery this week only. " * 20)
    + """</p>
<p><a href="https://example.com/catalogue">See the catalogue</a></p>
<p style="font-size:12px;color:#777">Sent to {{email}}.
<a href="{{unsubscribeUrl}}">Unsubscribe</a></p></div></body></html>"""
)

FIRST = ["Ann", "José", "Zoë", "Mohammed", "Łukasz", "Ingrid", "Chloé", "Sven", "美咲", "Olu"]
LAST = ["Lee", "García", "Müller", "Nakamura", "Öztürk", "Smith", "Dubois", "Kowalski"]


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(sink):
        sys.exit("smtp-sink not found: apt-get install postfix (the daemon need not run)")
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [sink, *user, f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    sys.exit("smtp-sink did not start")


def source_ceiling(port: int, messages: int, sessions: int, size: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run(
        [source, "-d", "-s", str(sessions), "-l", str(size), "-m", str(messages),
         "-f", "news@bench.test", "-t", "someone@bench.test", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return messages / (time.perf_counter() - start)


def arrange(database_url: str, contacts: int, sink_port: int) -> tuple[uuid.UUID, uuid.UUID]:
    os.environ["HERALD_SECRET_KEY"] = SECRET
    from herald import migrate
    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow
    from herald.marketing.models import Campaign

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        org_id = bench_org(session, sink_port)
    now = utcnow()
    tag = uuid.uuid4().hex[:6]
    for start in range(0, contacts, 10_000):
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": org_id,
                "email": f"c{i}-{tag}@bench.test",
                "email_key": f"c{i}-{tag}@bench.test",
                "first_name": FIRST[i % len(FIRST)],
                "last_name": LAST[i % len(LAST)],
                "company_name": f"Company {i % 97}",
                "status": "CUSTOMER",
                "marketing_opt_out": False,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(start, min(start + 10_000, contacts))
        ]
        with unit_of_work(sessions) as session:
            session.execute(insert(Contact), rows)
    with unit_of_work(sessions) as session:
        campaign = Campaign(
            org_id=org_id, name="Bench", subject="Spring offers for {{firstName|you}} ✿",
            html_body=HTML, text_body="", audience={"type": "ALL"},
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    engine.dispose()
    return org_id, campaign_id


def run(args: argparse.Namespace) -> None:
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.launch import launch_campaign
    from herald.marketing.models import Campaign

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    port = free_port()
    sink = start_sink(port)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        print(f"Arranging {args.contacts:,} contacts on {database_url.split('://')[0]} ...")
        org_id, campaign_id = arrange(database_url, args.contacts, port)
        engine = make_engine(database_url)
        sessions = make_session_factory(engine)
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_SECRET_KEY": SECRET,
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_BASE_URL": "https://mail.bench.test",
        }
        workers = [
            subprocess.Popen([HERALD, "worker", "--concurrency", str(args.concurrency)], env=env)
            for _ in range(args.workers)
        ]
        time.sleep(2.0)  # let the workers import and start polling
        started = time.perf_counter()
        with unit_of_work(sessions) as session:
            launch_campaign(session, org_id, campaign_id)
        launched = time.perf_counter() - started
        while True:
            with unit_of_work(sessions, write=False) as session:
                row = session.execute(
                    select(Campaign.status, Campaign.delivered, Campaign.failed).where(
                        Campaign.id == campaign_id
                    )
                ).one()
            if row.status == "SENT":
                break
            if time.perf_counter() - started > args.timeout:
                sys.exit(f"timed out: {row}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        engine.dispose()
        rate = args.contacts / elapsed
        ceiling = source_ceiling(port, args.contacts, args.workers * args.concurrency, 4000)
        print(f"launch:       {launched:8.2f} s for {args.contacts:,} sends")
        print(f"end to end:   {elapsed:8.2f} s  delivered={row.delivered:,} failed={row.failed:,}")
        shape = f"{args.workers} workers x {args.concurrency} connections"
        print(f"Herald:       {rate:8.0f} msgs/s  ({shape})")
        print(f"smtp-source:  {ceiling:8.0f} msgs/s  (same sink, same connections)")
        print(f"ratio:        {rate / ceiling:8.2f}")
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(30)
        sink.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=600)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
