"""Mail services' webhooks under load: events accepted and recorded per second, and a burst
in which every acknowledged event must be stored.

Starts `herald serve --no-worker` on a throwaway database (an org with a SendGrid key and
Postmark credentials, a DELIVERED send per recipient) and, for a ceiling, a bare Starlette
app that reads the body and answers the same JSON; then:

1. wrk against each, POSTing one Postmark Bounce per request (basic credentials) and one
   signed SendGrid batch of --batch bounce events per request, for --duration seconds; the
   rate, the p99 and each server's CPU time per call (steadier than a rate on a shared
   machine);
2. a burst of --burst Postmark events, each its own MessageID, from --burst-connections
   concurrent keep-alive connections (a plain asyncio HTTP/1.1 client);
3. the worker's ingest of what was stored (through herald.bounces.ingest), timed.

Then it checks what a 200 promises, like with like. The burst, event by event: every event
answered 200 is stored (by its MessageID), none is stored twice, and after the ingest each
is recorded once as a report. wrk's calls, whose bodies are alike, by count: stored >=
answered 200 (a loss smaller than the calls in flight when wrk stops, at most
--connections, would not show there; the burst is the exact check). And every stored call
is ingested. It exits non-zero, saying which check failed, if one does.

    apt-get install wrk
    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --duration 10 --connections 64 --burst 50000
    .venv/bin/python bench/webhooks.py --database-url postgresql+psycopg://user@host/db
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import cpu_seconds, free_port

HERALD = str(Path(sys.executable).with_name("herald"))
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway benchmark database

LUA = r"""
local body, headers = "", {}
function init(args)
  local f = io.open(args[1], "rb"); body = f:read("*a"); f:close()
  for line in io.lines(args[2]) do
    local name, value = line:match("^([^:]+): (.*)$")
    headers[name] = value
  end
end
function request() return wrk.format("POST", nil, headers, body) end
"""

BARE_APP = r"""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return JSONResponse({"recorded": 1})

app = Starlette(routes=[Route("/webhooks/{provider}/{key}", hook, methods=["POST"])])
"""


def env_for(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": SECRET,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_BASE_URL": "https://herald.bench",
    }


def arrange(database_url: str, recipients: int) -> dict[str, str]:
    """The org, its keys and its delivered sends; what the clients need to call it."""
    os.environ.update(env_for(database_url))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from herald.audit.service import CLI, system_actor
    from herald.db import unit_of_work
    from herald.mailconfig import inbound, service
    from herald.mailconfig.schemas import EmailConfigIn
    from herald.orgs.service import create_org
    from herald.runtime import Runtime
    from herald.settings import Settings

    runtime = Runtime.from_settings(Settings())
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with unit_of_work(runtime.sessions) as session:
        org = create_org(session, f"Bench {uuid.uuid4().hex[:6]}", ["marketing"])
        data = EmailConfigIn.model_validate(
            {
                "host": "smtp.bench.example.com",
                "port": 587,
                "security": "starttls",
                "defaultFromEmail": "news@bench.example.com",
                "sendgridVerificationKey": base64.b64encode(public).decode(),
            }
        )
        row = service.save_config(
            session, runtime.settings, org.id, data, actor=system_actor(org.id, CLI)
        )
        webhook_key = str(row.webhook_key)
        password = str(inbound.postmark_password(runtime.settings, row))
        org_id = org.id
    _delivered_sends(runtime, org_id, recipients)
    runtime.engine.dispose()
    signer_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "org_id": str(org_id),
        "key": webhook_key,
        "postmark_password": password,
        "signer": signer_pem,
    }


def _delivered_sends(runtime: object, org_id: uuid.UUID, recipients: int) -> None:
    import secrets

    from sqlalchemy import insert

    from herald.crm.models import Contact
    from herald.db import unit_of_work, utcnow
    from herald.marketing.models import Campaign, MarketingSend

    now = utcnow()
    with unit_of_work(runtime.sessions) as session:  # type: ignore[attr-defined]
        campaign = Campaign(
            org_id=org_id,
            name="Bench",
            subject="Hi",
            status="SENT",
            recipients=recipients,
            delivered=recipients,
        )
        session.add(campaign)
        session.flush()
        contacts = [
            {
                "id": uuid.uuid4(),
                "org_id": org_id,
                "email": f"r{i}@bench.example.com",
                "email_key": f"r{i}@bench.example.com",
                "status": "LEAD",
            }
            for i in range(recipients)
        ]
        session.execute(insert(Contact), contacts)
        session.execute(
            insert(MarketingSend),
            [
                {
                    "org_id": org_id,
                    "campaign_id": campaign.id,
                    "contact_id": c["id"],
                    "email": c["email"],
                    "token": secrets.token_hex(32),
                    "status": "DELIVERED",
                    "delivered_at": now,
                    "next_attempt_at": now,
                }
                for c in contacts
            ],
        )


def postmark_body(email: str, message_id: str = "") -> bytes:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "MessageStream": "outbound",
            "ID": 4323372036854775807,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "MessageID": message_id or str(uuid.uuid4()),
            "ServerID": 23,
            "Description": "The server was unable to deliver your message.",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email,
            "From": "news@bench.example.com",
            "BouncedAt": "2026-12-07T16:33:54.9070259Z",
        }
    ).encode()


def sendgrid_call(signer_pem: str, batch: int) -> tuple[bytes, dict[str, str]]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    events = [
        {
            "email": f"r{i}@bench.example.com",
            "timestamp": 1513299569,
            "event": "bounce",
            "sg_event_id": uuid.uuid4().hex,
            "reason": "550 5.1.1 unknown recipient",
            "status": "5.1.1",
            "type": "bounce",
        }
        for i in range(batch)
    ]
    body = json.dumps(events).encode()
    key = serialization.load_pem_private_key(signer_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"herald:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{cmd[0]} did not start (see {log})")


@dataclass
class Run:
    rate: float  # requests/s
    answered: int  # 2xx
    other: int
    p99_ms: float
    cpu_per_call: float  # the server's CPU seconds per request answered


_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    args: argparse.Namespace,
    tmp: Path,
    server: subprocess.Popen[bytes],
) -> Run:
    (tmp / "body").write_bytes(body)
    (tmp / "headers").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    (tmp / "post.lua").write_text(LUA)
    cpu = cpu_seconds(server.pid)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
         "-s", str(tmp / "post.lua"), url, "--", str(tmp / "body"), str(tmp / "headers")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(server.pid) - cpu
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    other = int(bad.group(1)) if bad else 0
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99_ms = float(p99.group(1)) * _TO_MS[p99.group(2)] if p99 else float("nan")
    return Run(rate, total - other, other, p99_ms, cpu / max(total, 1))


def _count(database_url: str, sql: str, **params: object) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def stored_calls(database_url: str) -> int:
    return _count(database_url, "SELECT count(*) FROM webhook_deliveries")


def message_ids(database_url: str, table: str, column: str) -> Counter[str]:
    """How many times each Postmark MessageID stands in ``table`` (calls or raw reports)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            bodies = conn.execute(
                text(f"SELECT {column} FROM {table} WHERE source = 'postmark'")  # noqa: S608
            ).scalars()
            return Counter(json.loads(body)["MessageID"] for body in bodies)
    finally:
        engine.dispose()


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> int:
    """One request on a keep-alive connection; its status."""
    writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def burst(
    port: int, path: str, password: str, total: int, connections: int
) -> tuple[set[str], set[str], float]:
    """(the MessageIDs sent, those of the calls answered 200, seconds) of ``total``
    Postmark calls, each its own event, from ``connections`` connections."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in basic(password).items()
    )
    sent: set[str] = set()
    acknowledged: set[str] = set()
    todo = iter(range(total))

    async def client() -> None:
        connection = None
        for i in todo:
            message_id = str(uuid.uuid4())
            sent.add(message_id)
            body = postmark_body(f"r{i % 1000}@bench.example.com", message_id)
            try:
                connection = connection or await asyncio.open_connection("127.0.0.1", port)
                status = await asyncio.wait_for(_post(*connection, head, body), 120)
            except (OSError, EOFError, ValueError, IndexError):  # timeouts are OSErrors
                status, connection = 0, None  # not acknowledged: the service would retry
            if status == 200:
                acknowledged.add(message_id)
        if connection:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return sent, acknowledged, time.perf_counter() - started


def ingest_all(database_url: str) -> tuple[int, float]:
    from herald.bounces.webhooks import drain
    from herald.db import unit_of_work
    from herald.mail.sendref import SendRefKeys
    from herald.runtime import Runtime
    from herald.settings import Settings

    runtime = Runtime.from_settings(Settings(database_url=database_url))
    keys = SendRefKeys.from_secret(SECRET)
    taken_total = 0
    started = time.perf_counter()
    while True:
        with unit_of_work(runtime.sessions) as session:
            taken = drain.drain_batch(session, keys)
        taken_total += taken
        if not taken:
            break
    seconds = time.perf_counter() - started
    runtime.engine.dispose()
    return taken_total, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch", type=int, default=50, help="SendGrid events per call")
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--burst-connections", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=1000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-webhooks-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'herald.db'}"
    env = env_for(database_url)
    subprocess.run([HERALD, "db", "upgrade"], env=env, check=True, capture_output=True)
    found = arrange(database_url, args.recipients)
    from herald.log import configure_logging

    configure_logging("WARNING")  # the in-process ingest logs a line per report at INFO
    port, bare_port = free_port(), free_port()
    (tmp / "bare_app.py").write_text(BARE_APP)
    herald = start(
        [HERALD, "serve", "--no-worker", "--port", str(port)], env, port, tmp / "herald.log"
    )
    bare = start(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
         "--log-level", "warning", "--no-access-log"],
        {**env, "PYTHONPATH": str(tmp)}, bare_port, tmp / "bare.log",
    )  # fmt: skip
    problems: list[str] = []
    try:
        key, password = found["key"], found["postmark_password"]
        one = postmark_body("r1@bench.example.com")
        batch_body, batch_headers = sendgrid_call(found["signer"], args.batch)
        database = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
        print(f"database: {database}; wrk -t2 -c{args.connections} -d{args.duration}s")
        ceiling = wrk(
            f"http://127.0.0.1:{bare_port}/webhooks/postmark/x", one, basic("x"), args, tmp, bare
        )
        print(
            f"bare Starlette POST (ceiling): {ceiling.rate:,.0f} req/s, p99 "
            f"{ceiling.p99_ms:,.0f} ms, server CPU {ceiling.cpu_per_call * 1e6:,.0f} µs/call"
        )
        before = stored_calls(database_url)
        pm = wrk(
            f"http://127.0.0.1:{port}/webhooks/postmark/{key}", one, basic(password), args, tmp,
            herald,
        )  # fmt: skip
        time.sleep(2)  # the calls still in flight when wrk stopped
        stored = stored_calls(database_url) - before
        print(
            f"Postmark, 1 event per call: {pm.rate:,.0f} events/s accepted and stored "
            f"({pm.rate / ceiling.rate:.2f}x the ceiling), p99 {pm.p99_ms:,.0f} ms, server CPU "
            f"{pm.cpu_per_call * 1e6:,.0f} µs/call ({pm.cpu_per_call / ceiling.cpu_per_call:.1f}x"
            f" the ceiling's); 200s {pm.answered:,}, other {pm.other:,}, stored {stored:,}"
        )
        if stored < pm.answered:
            problems.append(f"Postmark: {pm.answered:,} answered 200 but {stored:,} stored")
        before += stored
        sg = wrk(
            f"http://127.0.0.1:{port}/webhooks/sendgrid/{key}", batch_body, batch_headers,
            args, tmp, herald,
        )  # fmt: skip
        time.sleep(2)
        stored = stored_calls(database_url) - before
        print(
            f"SendGrid, {args.batch} events per call: {sg.rate * args.batch:,.0f} events/s "
            f"({sg.rate:,.0f} calls/s), p99 {sg.p99_ms:,.0f} ms, server CPU "
            f"{sg.cpu_per_call * 1e6:,.0f} µs/call; 200s {sg.answered:,}, other {sg.other:,}, "
            f"stored calls {stored:,}"
        )
        if stored < sg.answered:
            problems.append(f"SendGrid: {sg.answered:,} answered 200 but {stored:,} stored")
        cpu = cpu_seconds(herald.pid)
        sent, acknowledged, seconds = asyncio.run(
            burst(port, f"/webhooks/postmark/{key}", password, args.burst, args.burst_connections)
        )
        cpu = cpu_seconds(herald.pid) - cpu
        calls = message_ids(database_url, "webhook_deliveries", "body")
        lost = len(acknowledged - set(calls))
        twice = sum(1 for m in sent if calls[m] > 1)  # (wrk's calls all carry one MessageID)
        print(
            f"burst of {args.burst:,} Postmark events, {args.burst_connections} connections: "
            f"{len(acknowledged):,} acknowledged in {seconds:.1f} s "
            f"({len(acknowledged) / seconds:,.0f}/s, server CPU "
            f"{cpu / max(args.burst, 1) * 1e6:,.0f} µs/call), {len(sent - acknowledged):,} not; "
            f"acknowledged but not stored: {lost}; stored twice: {twice}"
        )
        if len(sent) != args.burst:
            problems.append(f"burst: {len(sent):,} events sent, not {args.burst:,}")
        if lost:
            problems.append(f"burst: {lost} acknowledged events not stored")
        if twice:
            problems.append(f"burst: {twice} events stored more than once")
        herald.terminate()
        herald.wait(30)
        waiting = stored_calls(database_url)
        taken, seconds = ingest_all(database_url)
        left = stored_calls(database_url)
        recorded = message_ids(database_url, "bounce_raw_reports", "content")
        unrecorded = sum(1 for m in acknowledged if recorded[m] != 1)
        print(
            f"worker ingest: {taken:,} of {waiting:,} stored calls in {seconds:.1f} s "
            f"({taken / seconds:,.0f} calls/s); left (failed): {left:,}; acknowledged burst "
            f"events not recorded exactly once: {unrecorded}"
        )
        if taken != waiting or left:
            problems.append(f"ingest: {waiting:,} stored calls, {taken:,} taken, {left:,} left")
        if unrecorded:
            problems.append(f"ingest: {unrecorded} acknowledged burst events not recorded once")
    finally:
        for process in (herald, bare):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        sys.exit("FAILED: " + "; ".join(problems))
    print("every acknowledged event stored, none twice, every stored call ingested: OK")


if __name__ == "__main__":
    main()
