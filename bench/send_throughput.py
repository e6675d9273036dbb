"""End-to-end sending throughput: N contacts, launch, `herald worker` processes, until SENT.

Mail goes to Postfix's smtp-sink on loopback (Debian package `postfix`; the postfix daemon is
never started). Each run also measures smtp-source against a fresh smtp-sink with the same
number of connections: the ceiling of this machine's loopback SMTP, so the ratio says how
close Herald gets.

    .venv/bin/python bench/send_throughput.py --contacts 20000 --workers 2
    .venv/bin/python bench/send_throughput.py --database-url postgresql+psycopg://...
    .venv/bin/python bench/send_throughput.py --contacts 20000 --workers 1,2,4 \\
        --database-url postgresql+psycopg://...

It also prints the CPU all `herald worker` processes spent from the launch to SENT, per
message: steadier than the rate when other work shares the machine.

`--workers 1,2,4` measures scale-out: the contacts are arranged once, then each count gets
a fresh campaign over them (same org), fresh worker processes and a fresh sink; one line per
count, and a table at the end.

Duplicate check (`--check-duplicates`, on by default for a scale-out list such as
`--workers 1,2,4`; `--no-check-duplicates` turns it off): the sink
Herald sends to runs with `-D`, appending every completed mail transaction with its
`X-Rcpt-Args:` records to a dump file (on /dev/shm when it exists). After each run the
script counts the recipients in the dump and prints received, distinct, duplicates
(received - distinct) and missing (bench addresses never received); it exits 1 if
duplicates or missing is not 0. The dump is not free: smtp-sink writes every message, body
included, to the file, which costs a third to a half of the rate smtp-source reaches into
that sink (measured: about 7,000 -> 3,400 msgs/s with the dump on disk, 3,800-5,200 on tmpfs).
So the ceiling is always measured WITHOUT a dump, on its own sink, and the script also
prints smtp-source's rate into a dumping sink ("dump ceiling"), so you can see whether
Herald was held back by the dump. A single count (`--workers 2`) runs without it, for figures
comparable with earlier runs.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from common import allow_loopback_smtp, bench_org, cpu_seconds, free_port
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

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

# Prepended by smtp-sink (-S) to every dumped message: a line no message body contains.
MARKER = f"X-Herald-Bench-Message: {uuid.uuid4().hex}"


@dataclass
class Sink:
    process: subprocess.Popen[bytes]
    port: int
    dump: Path | None

    def stop(self) -> None:
        """Stop the sink; once it has exited its dump is complete."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)


@dataclass
class Check:
    received: int
    distinct: int
    missing: int

    @property
    def duplicates(self) -> int:
        return self.received - self.distinct

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.missing == 0


@dataclass
class Result:
    workers: int
    connections: int
    launched: float
    elapsed: float
    delivered: int
    failed: int
    rate: float
    ceiling: float
    dump_ceiling: float | None
    check: Check | None
    worker_cpu: float  # seconds of CPU all workers spent from the launch to SENT


def start_sink(dump: Path | None = None) -> Sink:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(sink):
        sys.exit("smtp-sink not found: apt-get install postfix (the daemon need not run)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    capture = ["-D", str(dump), "-S", MARKER + "\\n"] if dump else []
    process = subprocess.Popen(
        [sink, *user, *capture, f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return Sink(process, port, dump)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    sys.exit("smtp-sink did not start")


def dump_dir() -> Path:
    """A private directory the sink (which drops to `nobody` when run as root) can write."""
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs; mkdtemp makes a private directory there
    path = Path(tempfile.mkdtemp(prefix="herald-bench-dump-", dir=shm if shm.is_dir() else None))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return path


def source_rate(port: int, messages: int, sessions: int, size: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run(
        [source, "-d", "-s", str(sessions), "-l", str(size), "-m", str(messages),
         "-f", "news@bench.test", "-t", "someone@bench.test", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return messages / (time.perf_counter() - start)


def source_ceiling(messages: int, sessions: int, size: int, dump: Path | None = None) -> float:
    """smtp-source into a sink of its own (no dump unless `dump` is given)."""
    sink = start_sink(dump)
    try:
        return source_rate(sink.port, messages, sessions, size)
    finally:
        sink.stop()
        if dump:
            dump.unlink(missing_ok=True)


def read_recipients(dump: Path) -> list[str]:
    """The RCPT addresses of every transaction smtp-sink dumped, one entry per recipient."""
    recipients: list[str] = []
    in_sink_headers = False
    with dump.open("rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == MARKER:
                in_sink_headers = True
            elif in_sink_headers:
                if line.startswith("X-Rcpt-Args:"):
                    args = line.partition(":")[2].strip()
                    address = args[1 : args.index(">")] if args.startswith("<") else args
                    recipients.append(address.lower())
                elif line.startswith("Received:"):  # smtp-sink's last header
                    in_sink_headers = False
    return recipients


def check_dump(dump: Path, expected: set[str]) -> Check:
    recipients = read_recipients(dump)
    distinct = set(recipients)
    return Check(len(recipients), len(distinct), len(expected - distinct))


def addresses(contacts: int, tag: str) -> list[str]:
    return [f"c{i}-{tag}@bench.test" for i in range(contacts)]


def arrange(database_url: str, contacts: int, sink_port: int) -> tuple[uuid.UUID, str]:
    """Migrate, a licensed org, and `contacts` contacts; returns the org and the address tag."""
    os.environ["HERALD_SECRET_KEY"] = SECRET
    allow_loopback_smtp()
    from herald import migrate
    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        org_id = bench_org(session, sink_port)
    now = utcnow()
    tag = uuid.uuid4().hex[:6]
    emails = addresses(contacts, tag)
    for start in range(0, contacts, 10_000):
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": org_id,
                "email": emails[i],
                "email_key": emails[i],
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
    engine.dispose()
    return org_id, tag


def new_campaign(sessions: sessionmaker[Session], org_id: uuid.UUID, sink_port: int) -> uuid.UUID:
    """A fresh DRAFT campaign to everyone in the org, with the org's SMTP port set to the sink."""
    from herald.db import unit_of_work
    from herald.mailconfig.models import EmailConfig
    from herald.marketing.models import Campaign

    with unit_of_work(sessions) as session:
        session.execute(
            update(EmailConfig).where(EmailConfig.org_id == org_id).values(port=sink_port)
        )
        campaign = Campaign(
            org_id=org_id, name="Bench", subject="Spring offers for {{firstName|you}} ✿",
            html_body=HTML, text_body="", audience={"type": "ALL"},
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        return campaign.id


def worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of worker counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be >= 1: {text!r}")
    return counts


def measure(
    args: argparse.Namespace,
    database_url: str,
    sessions: sessionmaker[Session],
    org_id: uuid.UUID,
    expected: set[str],
    count: int,
    check: bool,
) -> Result:
    """One campaign sent by `count` fresh workers into a fresh sink; then the ceilings."""
    from herald.audit.service import CLI, system_actor
    from herald.db import unit_of_work
    from herald.marketing.launch import launch_campaign
    from herald.marketing.models import Campaign

    dumps = dump_dir() if check else None
    sink = start_sink(dumps / "herald.dump" if dumps else None)
    workers: list[subprocess.Popen[bytes]] = []
    connections = count * args.concurrency
    try:
        campaign_id = new_campaign(sessions, org_id, sink.port)
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_SECRET_KEY": SECRET,
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_BASE_URL": "https://mail.bench.test",
        }
        workers = [
            subprocess.Popen([HERALD, "worker", "--concurrency", str(args.concurrency)], env=env)
            for _ in range(count)
        ]
        time.sleep(2.0)  # let the workers import and start polling
        idle_cpu = sum(cpu_seconds(p.pid) for p in workers)
        started = time.perf_counter()
        with unit_of_work(sessions) as session:
            launch_campaign(session, org_id, campaign_id, actor=system_actor(org_id, CLI))
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
        worker_cpu = sum(cpu_seconds(p.pid) for p in workers) - idle_cpu
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(30)
        sink.stop()
    try:
        result = None if sink.dump is None else check_dump(sink.dump, expected)
    finally:
        if dumps:
            shutil.rmtree(dumps, ignore_errors=True)
    ceiling = source_ceiling(args.contacts, connections, 4000)
    dump_ceiling = None
    if dumps:
        scratch = dump_dir()
        try:
            dump_ceiling = source_ceiling(args.contacts, connections, 4000, scratch / "x.dump")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return Result(
        workers=count,
        connections=connections,
        launched=launched,
        elapsed=elapsed,
        delivered=row.delivered,
        failed=row.failed,
        rate=args.contacts / elapsed,
        ceiling=ceiling,
        dump_ceiling=dump_ceiling,
        check=result,
        worker_cpu=worker_cpu,
    )


def check_text(check: Check) -> str:
    return (
        f"received={check.received:,} distinct recipients={check.distinct:,} "
        f"duplicates={check.duplicates:,} missing={check.missing:,}"
    )


def print_block(args: argparse.Namespace, r: Result) -> None:
    """The single-count report (docs quote these lines)."""
    print(f"launch:       {r.launched:8.2f} s for {args.contacts:,} sends")
    print(f"end to end:   {r.elapsed:8.2f} s  delivered={r.delivered:,} failed={r.failed:,}")
    shape = f"{r.workers} workers x {args.concurrency} connections"
    print(f"Herald:       {r.rate:8.0f} msgs/s  ({shape})")
    print(f"smtp-source:  {r.ceiling:8.0f} msgs/s  (own smtp-sink, no dump, same connections)")
    print(f"ratio:        {r.rate / r.ceiling:8.2f}")
    per_message = r.worker_cpu / args.contacts * 1e6
    print(f"worker CPU:   {r.worker_cpu:8.2f} s  ({per_message:.0f} µs per message, all workers)")
    if r.check is not None and r.dump_ceiling is not None:
        print(
            f"dump ceiling: {r.dump_ceiling:8.0f} msgs/s  (smtp-source into a sink writing "
            f"its -D dump, as Herald's sink did: {r.dump_ceiling / r.ceiling:.2f} of the ceiling)"
        )
        verdict = "OK" if r.check.ok else "FAILED"
        print(f"exactly once: {verdict}  {check_text(r.check)}")


def print_line(r: Result) -> None:
    text = (
        f"{r.workers} worker{'s' if r.workers > 1 else ' '} x {r.connections // r.workers}: "
        f"{r.rate:6.0f} msgs/s  ratio {r.rate / r.ceiling:.2f} to smtp-source "
        f"{r.ceiling:.0f} msgs/s  ({r.elapsed:.2f} s, launch {r.launched:.2f} s, "
        f"delivered={r.delivered:,} failed={r.failed:,})"
    )
    if r.check is not None:
        text += f"  {check_text(r.check)}"
    print(text, flush=True)


def print_table(results: list[Result]) -> None:
    base = results[0].rate
    header = (
        f"{'workers':>7} {'conns':>5} {'seconds':>8} {'msgs/s':>7} {'speedup':>7} "
        f"{'ceiling':>7} {'ratio':>5}"
    )
    checked = any(r.check is not None for r in results)
    if checked:
        header += f" {'dumpceil':>8} {'received':>8} {'distinct':>8} {'dups':>5} {'missing':>7}"
    print()
    print(header)
    for r in results:
        line = (
            f"{r.workers:>7} {r.connections:>5} {r.elapsed:>8.2f} {r.rate:>7.0f} "
            f"{r.rate / base:>7.2f} {r.ceiling:>7.0f} {r.rate / r.ceiling:>5.2f}"
        )
        if r.check is not None and r.dump_ceiling is not None:
            c = r.check
            line += (
                f" {r.dump_ceiling:>8.0f} {c.received:>8} {c.distinct:>8} "
                f"{c.duplicates:>5} {c.missing:>7}"
            )
        print(line)


def run(args: argparse.Namespace) -> None:
    from herald.db import make_engine, make_session_factory

    counts: list[int] = args.workers
    check = args.check_duplicates
    if check is None:
        check = len(counts) > 1
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    try:
        print(f"Arranging {args.contacts:,} contacts on {database_url.split('://')[0]} ...")
        org_id, tag = arrange(database_url, args.contacts, 25)  # the port is set per run
        expected = set(addresses(args.contacts, tag))
        engine = make_engine(database_url)
        sessions = make_session_factory(engine)
        if check:
            print(
                "Duplicate check on: Herald's sink dumps every message (smtp-sink -D), which "
                "slows that sink (see the dump ceiling); --no-check-duplicates to compare "
                "with runs without it."
            )
        results: list[Result] = []
        for count in counts:
            result = measure(args, database_url, sessions, org_id, expected, count, check)
            results.append(result)
            if len(counts) == 1:
                print_block(args, result)
            else:
                print_line(result)
        engine.dispose()
        if len(counts) > 1:
            print_table(results)
        failed = [r for r in results if r.check is not None and not r.check.ok]
        if failed:
            shapes = ", ".join(f"{r.workers} workers" for r in failed)
            sys.exit(f"duplicate check FAILED for {shapes}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument(
        "--workers",
        type=worker_counts,
        default=[2],
        help="worker processes; a comma list (1,2,4) runs one campaign per count",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--check-duplicates",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dump what the sink receives and prove each recipient got exactly one message "
        "(default: on for a list of worker counts)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
