"""Arranging a sending run for tests: an org with SMTP settings pointing at a test server,
contacts, a launched campaign, and workers run in this process or as `herald worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from herald.audit.service import CLI, system_actor
from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from herald.marketing.launch import launch_campaign
from herald.marketing.models import Campaign, MarketingSend
from herald.marketing.worker import Worker
from herald.runtime import Runtime
from herald.secretbox import SecretBox
from tests.conftest import make_settings
from tests.orgs.factories import make_org
from tests.smtp_server import SmtpServer

HERALD = str(Path(sys.executable).with_name("herald"))


def fast_runtime(runtime: Runtime, **overrides: object) -> Runtime:
    """The test database with quick timings (leases, retries) for the engine."""
    values: dict[str, object] = {
        "lease_seconds": 3,
        "retry_base_seconds": 0.2,
        "retry_window_seconds": 5,
    }
    values.update(overrides)
    settings = make_settings(runtime.settings.database_url, **values)
    return Runtime(settings=settings, engine=runtime.engine, sessions=runtime.sessions)


@dataclass
class Arranged:
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    emails: list[str] = field(default_factory=list)


def configure_smtp(
    runtime: Runtime,
    org_id: uuid.UUID,
    port: int,
    username: str = "",
    password: str = "",
    security: str = "none",
    max_per_second: int | None = None,
    max_per_hour: int | None = None,
    max_connections: int = 10,
) -> None:
    with unit_of_work(runtime.sessions) as session:
        session.add(
            EmailConfig(
                org_id=org_id,
                host="127.0.0.1",
                port=port,
                security=security,
                username=username,
                password_sealed=SecretBox(runtime.settings.secret_key, "herald.smtp").seal(password)
                if password
                else None,
                default_from_name="Herald Tests",
                default_from_email="news@herald.test",
                max_per_second=max_per_second,
                max_per_hour=max_per_hour,
                max_connections=max_connections,
            )
        )


def add_contacts(runtime: Runtime, org_id: uuid.UUID, emails: Iterable[str], **fields: object):
    with unit_of_work(runtime.sessions) as session:
        for email in emails:
            session.add(
                Contact(
                    org_id=org_id,
                    email=email,
                    email_key=email.lower(),
                    first_name=str(fields.get("first_name", "Ann")),
                    last_name=str(fields.get("last_name", "Lee")),
                    status=str(fields.get("status", "LEAD")),
                    marketing_opt_out=bool(fields.get("marketing_opt_out", False)),
                )
            )


def arrange(
    runtime: Runtime,
    server: SmtpServer,
    count: int,
    *,
    subject: str = "Hello {{firstName|there}}",
    html_body: str = "<p>Hi {{firstName}}, <a href='{{unsubscribeUrl}}'>unsubscribe</a></p>",
    launch: bool = True,
    **smtp: Any,
) -> Arranged:
    org = make_org(runtime)
    tag = uuid.uuid4().hex[:6]
    emails = [f"r{i}-{tag}@example.com" for i in range(count)]
    configure_smtp(runtime, org.id, server.port, **smtp)
    add_contacts(runtime, org.id, emails)
    with unit_of_work(runtime.sessions) as session:
        campaign = Campaign(
            org_id=org.id,
            name="Spring news",
            subject=subject,
            html_body=html_body,
            text_body="Hi {{firstName}}\nUnsubscribe: {{unsubscribeUrl}}",
            audience={"type": "ALL"},
        )
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    if launch:
        with unit_of_work(runtime.sessions) as session:
            launch_campaign(session, org.id, campaign_id, actor=system_actor(org.id, CLI))
    return Arranged(org.id, campaign_id, emails)


def campaign(runtime: Runtime, campaign_id: uuid.UUID) -> Campaign:
    with unit_of_work(runtime.sessions, write=False) as session:
        found = session.get(Campaign, campaign_id)
        assert found is not None
        session.expunge(found)
        return found


def sends(runtime: Runtime, campaign_id: uuid.UUID) -> list[MarketingSend]:
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = list(
            session.scalars(
                select(MarketingSend)
                .where(MarketingSend.campaign_id == campaign_id)
                .order_by(MarketingSend.id)
            )
        )
        session.expunge_all()
        return rows


def status_counts(runtime: Runtime, campaign_id: uuid.UUID) -> Counter[str]:
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = session.execute(
            select(MarketingSend.status, func.count())
            .where(MarketingSend.campaign_id == campaign_id)
            .group_by(MarketingSend.status)
        ).all()
    return Counter({status: n for status, n in rows})


def assert_counters_match_sends(runtime: Runtime, campaign_id: uuid.UUID) -> None:
    row = campaign(runtime, campaign_id)
    counts = status_counts(runtime, campaign_id)
    rows = sends(runtime, campaign_id)
    opened = sum(1 for s in rows if s.opened_at is not None)
    complained = sum(1 for s in rows if s.complained_at is not None)
    # failed counts the BOUNCED sends too (a bounce moves a send from delivered to failed)
    assert (row.delivered, row.failed, row.unknown, row.opens) == (
        counts["DELIVERED"],
        counts["FAILED"] + counts["BOUNCED"],
        counts["UNKNOWN"],
        opened,
    )
    assert (row.bounced, row.complaints) == (counts["BOUNCED"], complained)
    assert row.recipients == sum(counts.values())
    assert_engagement_matches(runtime, campaign_id)


def assert_engagement_matches(runtime: Runtime, campaign_id: uuid.UUID) -> None:
    """The campaign's and its links' engagement counters equal a count of the sends and the
    click rows they stand for (the contract's definitions, counted afresh)."""
    from herald.marketing.models import MarketingClick, MarketingLink

    row = campaign(runtime, campaign_id)
    all_sends = sends(runtime, campaign_id)
    opened = [s for s in all_sends if s.opened_at is not None]
    human = [s for s in opened if s.open_human_at is not None or s.click_human_at is not None]
    clicked = [s for s in all_sends if s.clicked_at is not None]
    human_clicked = [s for s in clicked if s.click_human_at is not None]
    assert (
        row.opens,
        row.human_opens,
        row.machine_opens,
        row.clicks,
        row.machine_clicks,
        row.unsubscribes,
    ) == (
        len(opened),
        len(human),
        len(opened) - len(human),
        len(human_clicked),
        len(clicked) - len(human_clicked),
        sum(1 for s in all_sends if s.unsubscribed_at is not None),
    )
    with unit_of_work(runtime.sessions, write=False) as session:
        hits = session.execute(
            select(MarketingClick.send_id, MarketingClick.link, MarketingClick.machine).where(
                MarketingClick.campaign_id == campaign_id
            )
        ).all()
        links = session.scalars(
            select(MarketingLink).where(MarketingLink.campaign_id == campaign_id)
        ).all()
        session.expunge_all()
    for link in links:
        mine = [h for h in hits if h.link == link.n]
        assert (link.clicks, link.unique_clicks, link.machine_clicks) == (
            sum(1 for h in mine if not h.machine),
            len({h.send_id for h in mine if not h.machine}),
            sum(1 for h in mine if h.machine),
        ), f"link {link.n}"
    # a send's first human click stands exactly when one of its click rows is human
    human_rows = {h.send_id for h in hits if not h.machine and h.link != 0}
    assert {s.id for s in human_clicked} == human_rows
    # and what each send keeps of them: its person's clicks per link
    kept = {s.id: s.human_link_hits or {} for s in all_sends}
    counted: dict[int, dict[str, int]] = {s.id: {} for s in all_sends}
    for h in hits:
        if not h.machine and h.link != 0:
            counted[h.send_id][str(h.link)] = counted[h.send_id].get(str(h.link), 0) + 1
    assert kept == counted


class InProcessWorker:
    """A Worker on its own thread and event loop, as `herald serve` embeds it."""

    def __init__(self, runtime: Runtime, concurrency: int = 2, **options: object) -> None:
        self.worker = Worker(runtime, concurrency=concurrency, poll_seconds=0.05, **options)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.worker.run(),)
        )

    def __enter__(self) -> InProcessWorker:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(30)
        self.loop.close()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_for_status(runtime: Runtime, campaign_id: uuid.UUID, status: str, timeout: float = 60):
    return wait_until(lambda: campaign(runtime, campaign_id).status == status, timeout)


def start_worker_process(
    runtime: Runtime, concurrency: int = 2, **env: str
) -> subprocess.Popen[bytes]:
    settings = runtime.settings
    environment = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_SECRET_KEY": settings.secret_key,
        "HERALD_BASE_URL": settings.base_url,
        "HERALD_LEASE_SECONDS": str(settings.lease_seconds),
        "HERALD_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
        "HERALD_RETRY_WINDOW_SECONDS": str(settings.retry_window_seconds),
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_SMTP_ALLOWED_NETWORKS": settings.smtp_allowed_networks,
        **env,
    }
    return subprocess.Popen(
        [HERALD, "worker", "--concurrency", str(concurrency)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def serve_process(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`herald serve` on a free port with ``env``; returns once /healthz answers 200."""
    import httpx

    from tests.conftest import free_port

    port = free_port()
    process = subprocess.Popen(
        [HERALD, "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=60)
    return process, url


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mark_delivered(runtime: Runtime, campaign_id: uuid.UUID, seconds_ago: float = 0) -> None:
    """As if a worker had delivered every send (for tests of what comes after delivery),
    ``seconds_ago``."""
    import datetime as dt

    from sqlalchemy import update

    from herald.db import utcnow

    at = utcnow() - dt.timedelta(seconds=seconds_ago)
    with unit_of_work(runtime.sessions) as session:
        n = session.execute(
            update(MarketingSend)
            .where(MarketingSend.campaign_id == campaign_id)
            .values(status="DELIVERED", delivered_at=at, attempts=1)
        ).rowcount
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(delivered=n, status="SENT", completed_at=utcnow())
        )
