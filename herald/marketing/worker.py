"""The sending worker: claims batches of 100 sends, delivers them over pooled SMTP
connections, and records outcomes in batched commits.

Any number of workers may run, in one process or many, on one machine (SQLite) or many
(PostgreSQL): the queue functions make every claim exclusive. SIGTERM lets in-flight
messages finish and gives claimed but unstarted sends back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.db import unit_of_work
from herald.errors import Conflict
from herald.log import get_logger
from herald.mail.compose import (
    CampaignMessage,
    InvalidAddress,
    Recipient,
    smtp_address,
)
from herald.mail.mailer import Mailer, MailerFactory, ServerUnavailable
from herald.mail.pool import ConnectionPool
from herald.mail.sendref import SendRefKeys, make_message_id, return_path
from herald.mail.smtp import ConnectionLost, Phase, SmtpError, SmtpSettings
from herald.mailconfig.service import load_mail_account
from herald.marketing import queue
from herald.marketing.models import Campaign
from herald.marketing.preview import list_headers
from herald.marketing.queue import Outcome
from herald.runtime import Runtime

log = get_logger("herald.worker")
T = TypeVar("T")

DISPATCH_CHUNK = 50  # sends of one batch marked in flight together
BATCH_SIZE = 100
BATCHES_IN_FLIGHT = 2
DATABASE_RETRY_SECONDS = 1.0  # between claims while the database cannot be reached


@dataclass(frozen=True)
class CampaignJob:
    campaign_id: uuid.UUID
    message: CampaignMessage
    sender: str
    smtp: SmtpSettings
    # the base of each send's VERP return path; None: every message is sent from ``sender``
    bounce_address: str | None = None


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        concurrency: int = 4,
        owner: str | None = None,
        batches_in_flight: int = BATCHES_IN_FLIGHT,
        poll_seconds: float = 0.1,
        smtp_timeout: float = 60.0,
        mailer_factory: MailerFactory = ConnectionPool,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.concurrency = max(1, concurrency)
        host = socket.gethostname()[:32]
        self.owner = owner or f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batches_in_flight = max(1, batches_in_flight)
        self.poll_seconds = poll_seconds
        self.smtp_timeout = smtp_timeout
        self._stopping = asyncio.Event()
        self._jobs: dict[uuid.UUID, CampaignJob] = {}
        self._held: set[int] = set()  # sends leased to this worker right now
        self._mailer_factory = mailer_factory
        self._pools: dict[SmtpSettings, Mailer] = {}
        self._keys = SendRefKeys.from_secret(self.settings.secret_key)

    # -- database work runs in threads, one unit of work each ----------------------------

    async def _db(self, fn: Callable[[Session], T], write: bool = True) -> T:
        def run() -> T:
            with unit_of_work(self.runtime.sessions, write=write) as session:
                return fn(session)

        return await asyncio.to_thread(run)

    @property
    def max_in_flight(self) -> int:
        """The most sends one crash of this worker can leave UNKNOWN."""
        return DISPATCH_CHUNK * self.batches_in_flight

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        log.info("worker.started", owner=self.owner, concurrency=self.concurrency)
        upkeep = asyncio.create_task(self._upkeep())
        slots = asyncio.Semaphore(self.batches_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                await slots.acquire()
                if self._stopping.is_set():
                    slots.release()
                    break
                try:
                    batch = await self._db(
                        lambda s: queue.claim_batch(
                            s, self.owner, self.settings.lease_seconds, BATCH_SIZE
                        )
                    )
                except SQLAlchemyError as exc:  # the database is away: wait, then try again
                    log.error("worker.claim_failed", error=str(exc)[:500])
                    slots.release()
                    await self._sleep(DATABASE_RETRY_SECONDS)
                    continue
                if batch is None:
                    slots.release()
                    await self._wait_for_work()
                    continue
                task = asyncio.create_task(self._process(batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t: slots.release())
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            upkeep.cancel()
            for pool in self._pools.values():
                await pool.close()
            log.info("worker.stopped", owner=self.owner)

    async def _wait_for_work(self) -> None:
        """Idle: ask, read-only, every ``poll_seconds`` whether a claim would find sends, so
        a launch is picked up within that time without a write transaction per poll."""
        while not self._stopping.is_set():
            await self._sleep(self.poll_seconds)
            try:
                if await self._db(queue.has_due_sends, write=False):
                    return
            except SQLAlchemyError:
                return  # the claim meets the error too, and reports it

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _upkeep(self) -> None:
        """Keep our leases alive and turn dead workers' in-flight sends UNKNOWN."""
        interval = max(self.settings.lease_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                held = sorted(self._held)
                if held:
                    renew = functools.partial(
                        queue.renew_leases,
                        owner=self.owner,
                        send_ids=held,
                        lease_seconds=self.settings.lease_seconds,
                    )
                    await self._db(renew)
                recovered = await self._db(queue.recover_expired)
                if recovered:
                    log.warning("sends.recovered_unknown", count=recovered)
            except SQLAlchemyError as exc:  # a database outage must not end the upkeep loop
                log.error("worker.upkeep_failed", error=str(exc))

    # -- one batch ------------------------------------------------------------------------

    def _load_job(self, session: Session, campaign_id: uuid.UUID) -> CampaignJob | None:
        """The campaign's composed message and its org's SMTP account (cached while unchanged).

        Conflict (no configuration, unreadable password) holds the campaign with the reason.
        """
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return None
        account = load_mail_account(session, self.settings, campaign.org_id)
        smtp = dataclasses.replace(account.smtp, timeout=self.smtp_timeout)
        cached = self._jobs.get(campaign_id)
        if cached and (cached.smtp, cached.bounce_address) == (smtp, account.bounce_address):
            return cached
        message = CampaignMessage(
            subject=campaign.subject,
            html_body=campaign.html_body,
            text_body=campaign.text_body,
            from_name=campaign.from_name or account.from_name,
            from_email=campaign.from_email or account.from_email,
            base_url=self.settings.base_url,
            track_opens=campaign.track_opens,
            track_clicks=campaign.track_clicks,
            list_headers=list_headers(session, campaign),
        )
        sender = smtp_address(message.envelope_from())
        job = CampaignJob(campaign_id, message, sender, smtp, account.bounce_address)
        self._jobs[campaign_id] = job
        return job

    def _pool(self, smtp: SmtpSettings) -> Mailer:
        pool = self._pools.get(smtp)
        if pool is None:
            pool = self._pools[smtp] = self._mailer_factory(smtp, self.concurrency)
        return pool

    async def _process(self, batch: queue.Batch) -> None:
        """Send a batch chunk by chunk. One transaction records a chunk's outcomes and
        marks the next chunk in flight, so the database sees one commit per chunk."""
        remaining = list(batch.sends)
        self._held.update(s.id for s in batch.sends)  # the upkeep renews their leases
        due: queue.Outcomes | None = None  # outcomes sent but not yet recorded
        try:
            job = await self._db(lambda s: self._load_job(s, batch.campaign_id), write=False)
            if job is None:
                return
            pool = self._pool(job.smtp)
            while remaining and not self._stopping.is_set():
                await pool.ensure_ready()
                start = functools.partial(
                    self._record_and_start,
                    campaign_id=job.campaign_id,
                    recorded=due,
                    chunk=remaining[:DISPATCH_CHUNK],
                )
                go, skipped = await self._db(start)
                due, remaining = None, remaining[DISPATCH_CHUNK:]
                due = await self._send_chunk(job, pool, go, skipped)
        except ServerUnavailable as exc:
            log.warning("campaign.held", campaign_id=str(batch.campaign_id), reason=str(exc))
            await self._hold(
                batch.campaign_id, f"Sending paused: {exc}. Herald retries automatically."
            )
        except Conflict as exc:  # no SMTP configuration, or its password is unreadable
            await self._hold(batch.campaign_id, f"Sending paused: {exc.message}")
        except SQLAlchemyError as exc:  # the database went away mid-batch
            log.error("batch.failed", campaign_id=str(batch.campaign_id), error=str(exc)[:500])
        except InvalidAddress as exc:  # the campaign's own sender address
            await self._hold(
                batch.campaign_id, f"Sending paused: the From address is invalid ({exc})."
            )
        finally:
            ids = [s.id for s in remaining]
            last = due
            try:
                await self._db(lambda s: self._finish(s, batch.campaign_id, last, ids))
            except SQLAlchemyError as exc:
                # Nothing more to do here: what is in flight ends UNKNOWN when the lease
                # runs out, what was only claimed goes back to the queue.
                log.error(
                    "batch.finish_failed", campaign_id=str(batch.campaign_id), error=str(exc)[:500]
                )
            self._held.difference_update(s.id for s in batch.sends)

    def _record_and_start(
        self,
        session: Session,
        campaign_id: uuid.UUID,
        recorded: queue.Outcomes | None,
        chunk: list[queue.ClaimedSend],
    ) -> tuple[list[queue.ClaimedSend], queue.Outcomes]:
        if recorded is not None:
            self._record(session, campaign_id, recorded)
        return queue.start_dispatch(session, self.owner, campaign_id, chunk)

    def _record(self, session: Session, campaign_id: uuid.UUID, outcomes: queue.Outcomes) -> None:
        queue.record_outcomes(
            session,
            self.owner,
            campaign_id,
            outcomes,
            self.settings.retry_base_seconds,
            self.settings.retry_window_seconds,
        )

    def _finish(
        self,
        session: Session,
        campaign_id: uuid.UUID,
        outcomes: queue.Outcomes | None,
        unsent: list[int],
    ) -> None:
        """Record the last chunk, give back what was not started, lift a lapsed hold."""
        if outcomes is not None:
            self._record(session, campaign_id, outcomes)
            queue.clear_hold(session, campaign_id)
        queue.release(session, self.owner, unsent)

    async def _hold(self, campaign_id: uuid.UUID, reason: str) -> None:
        seconds = self.settings.retry_base_seconds
        await self._db(lambda s: queue.hold_campaign(s, campaign_id, reason, seconds))

    async def _send_chunk(
        self,
        job: CampaignJob,
        pool: Mailer,
        go: list[queue.ClaimedSend],
        outcomes: queue.Outcomes,
    ) -> queue.Outcomes:
        results = await asyncio.gather(
            *(self._deliver(job, pool, send) for send in go), return_exceptions=True
        )
        for send, result in zip(go, results, strict=True):
            if isinstance(result, BaseException):
                # A failure we did not foresee: the message may have gone out, so it is
                # never retried automatically.
                log.error("send.unexpected_error", send_id=send.id, error=repr(result)[:500])
                unexpected = f"Unexpected error while sending ({type(result).__name__})."
                result = (Outcome.UNKNOWN, unexpected)
            outcomes.add(send, *result)
        return outcomes

    async def _deliver(
        self, job: CampaignJob, pool: Mailer, send: queue.ClaimedSend
    ) -> tuple[Outcome, str]:
        recipient = Recipient(
            email=send.email,
            first_name=send.first_name,
            last_name=send.last_name,
            company_name=send.company_name,
            token=send.token,
        )
        try:
            # both name the send, so that its bounce or complaint finds it (herald.bounces)
            message_id = make_message_id(self._keys.message_id, send.id, job.message.domain)
            data = job.message.render(recipient, message_id=message_id)
            rcpt = smtp_address(send.email)
        except InvalidAddress as exc:
            return Outcome.FAILED, f"Not sent: the address cannot be used ({exc})."
        sender = job.sender
        if job.bounce_address:
            sender = return_path(self._keys.tag, job.bounce_address, send.id)
        try:
            await pool.send(sender, rcpt, data)
            return Outcome.DELIVERED, ""
        except SmtpError as exc:
            return (Outcome.RETRY if exc.reply.transient else Outcome.FAILED), str(exc.reply)
        except ConnectionLost as exc:
            if exc.phase is Phase.AFTER_DOT:
                return Outcome.UNKNOWN, (
                    f"The connection was lost after the whole message was sent ({exc}); "
                    "it may have been delivered, so it is not re-sent automatically."
                )
            return Outcome.RETRY, str(exc)
        except ServerUnavailable as exc:
            return Outcome.RETRY, str(exc)
