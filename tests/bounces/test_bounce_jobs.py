"""The workers' bounce work (herald.bounces.jobs): whatever one of its steps meets, it goes
on, so it can never end a worker's sending nor stop for good inside `herald serve`; and
what it and the webhook route promise as stored is committed durably."""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy import text

from herald.bounces import jobs as jobs_module
from herald.bounces.jobs import BounceJobs
from herald.bounces.webhooks.inbox import WebhookInbox
from tests.bounces import payloads
from tests.bounces.arrange import HARD, delivered_send, org_with_settings, outcome, store_call

NOWHERE = {"host": "127.0.0.1", "port": 993, "username": "u", "password": "p", "security": "tls"}


def test_a_step_that_fails_is_logged_and_the_bounce_jobs_go_on(client, runtime, monkeypatch):
    org = org_with_settings(client, runtime, bounceMailbox=NOWHERE)
    send = delivered_send(runtime, org.id)
    failed: list[str] = []

    class BrokenPoll:  # a bug, or a server's oddity nothing foresaw
        def __init__(self, *args: object) -> None:
            pass

        def run(self) -> None:
            failed.append("poll")
            raise KeyError("UIDVALIDITY")

    monkeypatch.setattr(jobs_module, "MailboxPoll", BrokenPoll)
    jobs = BounceJobs(runtime)

    async def main() -> None:
        running = asyncio.create_task(jobs.run())
        await until(lambda: failed == ["poll"])
        # after the failure, the other work is still done: a stored call is ingested
        body = json.dumps(payloads.postmark_bounce(send.email)).encode()
        store_call(runtime, org.id, "postmark", body)
        await until(lambda: outcome(runtime, send).__dict__ == HARD)
        assert not running.done()
        jobs.stop()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


def test_webhook_calls_and_mailbox_reports_are_committed_durably(runtime):
    """The webhook's 200 and the move out of the mailbox promise the report is on disk:
    on SQLite each commit is synced (synchronous=FULL, as the SMTP receiver's); PostgreSQL
    commits durably anyway."""
    promised = {
        "webhook inbox": WebhookInbox(runtime).runtime,
        "mailbox": BounceJobs(runtime).durable,
    }
    for what, writer in promised.items():
        if runtime.engine.dialect.name == "sqlite":
            with writer.engine.connect() as connection:
                synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
            assert synchronous == 2, what  # FULL
        else:
            assert writer is runtime, what
