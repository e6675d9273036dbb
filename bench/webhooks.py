"""Mail services' webhooks under load: events accepted and recorded per second, and a burst
in which every acknowledged event must be stored.

Starts `herald serve --no-worker` on a throwaway database (an org with a SendGrid key and
Postmark credentials, a DELIVERED send per recipient) and, for a ceiling, a bare Starlette
app that reads the body and answers the same JSON; then:

1. wrk against each, POSTing one Postmark Bounce per request (basic credentials) and one
   signed SendGrid batch of --batch bounce events per request, for --duration seconds;
2. a burst of --burst Postmark events from --burst-connections concurrent clients (Python,
   httpx): every 200 must be a stored call, none lost;
3. the worker's ingest of what was stored (through herald.bounces.ingest), timed.

After each step it counts the stored calls in the database (webhook_deliveries, before the
ingest) against the 200s answered.

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
from pathlib import Path

import httpx
from common import free_port

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


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def wrk(
    url: str, body: bytes, headers: dict[str, str], args: argparse.Namespace, tmp: Path
) -> tuple[float, int, int, str]:
    """(requests/s, 2xx answers, other answers, p99) of one wrk run."""
    (tmp / "body").write_bytes(body)
    (tmp / "headers").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    (tmp / "post.lua").write_text(LUA)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(tmp / "post.lua"),
            url,
            "--",
            str(tmp / "body"),
            str(tmp / "headers"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    p99 = re.search(r"99%\s+(\S+)", out)
    return rate, total - errors, errors, p99.group(1) if p99 else "?"


def stored_message_ids(database_url: str) -> set[str]:
    """The Postmark MessageIDs of every stored call."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            bodies = conn.execute(
                text("SELECT body FROM webhook_deliveries WHERE source = 'postmark'")
            ).scalars()
            return {json.loads(body)["MessageID"] for body in bodies}
    finally:
        engine.dispose()


def stored(database_url: str, org_id: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM webhook_deliveries WHERE org_id = :o"),
                    {"o": uuid.UUID(org_id).hex if database_url.startswith("sqlite") else org_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def burst(
    url: str, password: str, total: int, connections: int
) -> tuple[set[str], int, float]:
    """(the MessageIDs of the calls answered 200, other answers, seconds) of ``total``
    Postmark calls, each its own event, from ``connections`` clients."""
    acknowledged: set[str] = set()
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = basic(password)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            message_id = str(uuid.uuid4())
            body = postmark_body(f"r{i % 1000}@bench.example.com", message_id)
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                failed += 1
                continue
            if r.status_code == 200:
                acknowledged.add(message_id)
            else:
                failed += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(connections)))
    return acknowledged, failed, time.perf_counter() - started


def _reports(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM bounce_reports")).scalar_one())
    finally:
        engine.dispose()


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
    port, bare_port = free_port(), free_port()
    (tmp / "bare_app.py").write_text(BARE_APP)
    herald = start([HERALD, "serve", "--no-worker", "--port", str(port)], env, port)
    bare = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {**env, "PYTHONPATH": str(tmp)},
        bare_port,
    )
    try:
        key, org_id = found["key"], found["org_id"]
        one = postmark_body("r1@bench.example.com")
        batch_body, batch_headers = sendgrid_call(found["signer"], args.batch)
        database = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
        print(f"database: {database}; wrk -t2 -c{args.connections} -d{args.duration}s")
        ceiling = wrk(
            f"http://127.0.0.1:{bare_port}/webhooks/postmark/x", one, basic("x"), args, tmp
        )
        print(f"bare Starlette POST (ceiling): {ceiling[0]:,.0f} req/s, p99 {ceiling[3]}")
        before = stored(database_url, org_id)
        pm = wrk(
            f"http://127.0.0.1:{port}/webhooks/postmark/{key}",
            one,
            basic(found["postmark_password"]),
            args,
            tmp,
        )
        time.sleep(2)  # the calls still in flight when wrk stopped
        after = stored(database_url, org_id)
        print(
            f"Postmark, 1 event per call: {pm[0]:,.0f} events/s accepted and stored "
            f"({pm[0] / ceiling[0]:.2f}x the ceiling), p99 {pm[3]}; 200s {pm[1]:,}, "
            f"other {pm[2]:,}, stored {after - before:,}"
        )
        before = after
        sg = wrk(
            f"http://127.0.0.1:{port}/webhooks/sendgrid/{key}", batch_body, batch_headers, args, tmp
        )
        time.sleep(2)
        after = stored(database_url, org_id)
        print(
            f"SendGrid, {args.batch} events per call: {sg[0] * args.batch:,.0f} events/s "
            f"({sg[0]:,.0f} calls/s), p99 {sg[3]}; 200s {sg[1]:,}, other {sg[2]:,}, "
            f"stored calls {after - before:,}"
        )
        before = after
        acknowledged, failed, seconds = asyncio.run(
            burst(
                f"http://127.0.0.1:{port}/webhooks/postmark/{key}",
                found["postmark_password"],
                args.burst,
                args.burst_connections,
            )
        )
        lost = len(acknowledged - stored_message_ids(database_url))
        print(
            f"burst of {args.burst:,} Postmark events, {args.burst_connections} clients: "
            f"{len(acknowledged):,} acknowledged in {seconds:.1f} s "
            f"({len(acknowledged) / seconds:,.0f}/s), {failed:,} not; "
            f"acknowledged but not stored: {lost}"
        )
        herald.terminate()
        herald.wait(30)
        calls = stored(database_url, org_id)
        taken, seconds = ingest_all(database_url)
        events = _reports(database_url)
        print(
            f"worker ingest: {taken:,} stored calls ({events:,} events) in {seconds:.1f} s: "
            f"{events / seconds:,.0f} events/s"
        )
        if lost or calls != taken:
            print(f"stored {calls:,}, ingested {taken:,}")
            sys.exit("FAILED: an acknowledged event was not stored, or not ingested")
    finally:
        for process in (herald, bare):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
