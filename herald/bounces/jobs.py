"""The workers' bounce work (in `herald worker` and the worker of `herald serve`): ingest
the webhook calls stored by the web app, and poll the bounce mailboxes that are due. Any
number of workers run it; the database gives each call and each mailbox to one of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from herald.bounces.mailbox import MailboxPoll
from herald.bounces.webhooks import drain
from herald.bounces.webhooks import repository as webhook_calls
from herald.db import unit_of_work
from herald.log import get_logger
from herald.mail.sendref import SendRefKeys
from herald.mailconfig import polls
from herald.runtime import Runtime

log = get_logger("herald.bounces")

DRAIN_IDLE_SECONDS = 0.5
TOKEN_PURGE_SECONDS = 60.0
MAILBOX_CHECK_SECONDS = 5.0  # at most; sooner when HERALD_BOUNCE_POLL_SECONDS is shorter
ERROR_PAUSE_SECONDS = 1.0


class BounceJobs:
    def __init__(self, runtime: Runtime, owner: str | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.owner = owner or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.keys = SendRefKeys.from_secret(self.settings.secret_key)
        self.durable = runtime.durable()  # what a poll commits moves mail out of its folder
        self._stopping = asyncio.Event()
        self._purged_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        mailbox_idle = min(self.settings.bounce_poll_seconds, MAILBOX_CHECK_SECONDS)
        await asyncio.gather(
            self._forever(self._drain_once, DRAIN_IDLE_SECONDS),
            self._forever(self._poll_once, mailbox_idle),
        )

    async def _forever(self, step: Callable[[], bool], idle_seconds: float) -> None:
        """``step`` again and again until stopped. Whatever one step raises (the database
        away, a bug, hostile input) is logged and waited out: the bounce work never ends
        the worker's sending, nor stops for good inside `herald serve`."""
        while not self._stopping.is_set():
            try:
                busy = await asyncio.to_thread(step)
            except Exception as exc:
                log.error(
                    "bounce_jobs.failed",
                    step=step.__name__,
                    error=type(exc).__name__,
                    # the driver's words ("connection refused"), never SQLAlchemy's (with
                    # the statement's parameters: a report's text)
                    detail=str(exc.orig).strip()[:200] if isinstance(exc, DBAPIError) else None,
                )
                busy = False
                await self._sleep(ERROR_PAUSE_SECONDS)
            if not busy:
                await self._sleep(idle_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- steps, each on a thread; True: there may be more to do at once -------------------

    def _drain_once(self) -> bool:
        sessions = self.runtime.sessions
        with unit_of_work(sessions, write=False) as session:
            waiting = webhook_calls.any_waiting(session)
        taken = 0
        if waiting:
            with unit_of_work(sessions) as session:
                taken = drain.drain_batch(session, self.keys)
        if time.monotonic() - self._purged_at > TOKEN_PURGE_SECONDS:
            with unit_of_work(sessions) as session:
                drain.forget_old_tokens(session)
            self._purged_at = time.monotonic()
        return taken >= drain.BATCH

    def _poll_once(self) -> bool:
        sessions = self.runtime.sessions
        with unit_of_work(sessions, write=False) as session:
            if not polls.anything_due(session):
                return False
        with unit_of_work(sessions) as session:
            polls.add_missing(session)
            claim = polls.claim_due(session, self.owner, self.settings.lease_seconds)
        if claim is None:
            return False
        MailboxPoll(self.durable, claim).run()
        return True
