"""The sending worker: claims batches of 100 sends, delivers them over pooled SMTP
connections within the relay's limits, records outcomes in batched commits, and launches
scheduled campaigns when their time comes.

Any number of workers may run, in one process or many, on one machine (SQLite) or many
(PostgreSQL): the queue functions make every claim exclusive, and the relay's limits are
kept in the database for all of them (herald.marketing.relay). SIGTERM lets in-flight
messages finish and gives claimed but unstarted sends back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from herald.db import db_now, unit_of_work
from herald.errors import Conflict, HeraldError
from herald.log import get_logger
from herald.mail.compose import CampaignMessage, InvalidAddress, Recipient, smtp_address
from herald.mail.mailer import (
    BeforeStart,
    CredentialsRefused,
    Mailer,
    MailerFactory,
    ServerUnavailable,
    TooLate,
)
from herald.mail.pool import ConnectionPool
from herald.mail.sendref import SendRefKeys, make_message_id, return_path
from herald.mail.smtp import ConnectionLost, Phase, SmtpError, SmtpSettings
from herald.mailconfig.account import RelayLimits
from herald.mailconfig.service import load_mail_account
from herald.marketing import control, counters, launch, queue, relay
from herald.marketing.budget import FIRST_BACKOFF, Grant
from herald.marketing.connections import RelayPools
from herald.marketing.models import Campaign
from herald.marketing.preview import list_headers
from herald.marketing.queue import Cause, ClaimedSend, Outcome, Outcomes
from herald.marketing.rests import RelayRests
from herald.runtime import Runtime

log = get_logger("herald.worker")
T = TypeVar("T")

DISPATCH_CHUNK = 50  # sends of one batch marked in flight together
BATCH_SIZE = 100
BATCHES_IN_FLIGHT = 2
DATABASE_RETRY_SECONDS = 1.0  # between claims while the database cannot be reached
SCHEDULE_POLL_SECONDS = 1.0  # how often a worker looks for scheduled campaigns that are due
REAP_SECONDS = 1.0  # how often idle connection pools are closed


@dataclass(frozen=True)
class CampaignJob:
    campaign_id: uuid.UUID
    org_id: uuid.UUID
    name: str
    message: CampaignMessage
    sender: str
    smtp: SmtpSettings
    limits: RelayLimits
    held: bool = False  # it was held (see counters.hold_campaign) when the batch began
    # the base of each send's VERP return path; None: every message is sent from ``sender``
    bounce_address: str | None = None


@dataclass(frozen=True)
class Attempt:
    """What one send's attempt came to, and whose the failure was (for auto-pause)."""

    outcome: Outcome
    detail: str = ""
    cause: Cause = Cause.NONE
    refused_login: bool = False
    late: bool = False  # its permit ran out before a connection was free


# the common answers, made once: a worker makes thousands of attempts a second
DELIVERED = Attempt(Outcome.DELIVERED, cause=Cause.RECIPIENT)
LATE = Attempt(Outcome.UNSENT, late=True)


@dataclass
class ChunkStart:
    """What one transaction decided for the next chunk of a batch."""

    state: counters.CampaignState
    go: list[ClaimedSend]  # marked in flight: send them now (at their slots, if paced)
    skipped: Outcomes  # failed without sending (the contact may not be mailed any more)
    taken: int  # sends of the chunk dealt with; 0: stop the batch
    grant: Grant
    # time.monotonic() just before and just after the database's clock was read for the
    # grant: the grant's moment lies between them
    granted_between: tuple[float, float] = (0.0, 0.0)


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
        # each org's relay backoff as this worker knows it, checked before each transaction
        self._rests = RelayRests(functools.partial(self._db, write=False))
        self._pools = RelayPools(
            self._db, self.owner, self.concurrency, self.settings.lease_seconds, mailer_factory
        )
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
        helpers = [
            asyncio.create_task(self._upkeep()),
            asyncio.create_task(self._launch_scheduled()),
            asyncio.create_task(self._reap_pools()),
        ]
        slots = asyncio.Semaphore(self.batches_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                await slots.acquire()
                if self._stopping.is_set():
                    slots.release()
                    break
                claim = functools.partial(
                    queue.claim_batch,
                    owner=self.owner,
                    lease_seconds=self.settings.lease_seconds,
                    size=BATCH_SIZE,
                    skip_orgs=self._pools.skip_orgs(),
                )
                try:
                    batch = await self._db(claim)
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
            for helper in helpers:
                helper.cancel()
            try:
                await self._pools.close()
            except SQLAlchemyError as exc:  # the slots' leases run out by themselves
                log.error("worker.release_failed", error=str(exc)[:500])
            log.info("worker.stopped", owner=self.owner)

    async def _wait_for_work(self) -> None:
        """Idle: ask, read-only, every ``poll_seconds`` whether a claim would find sends, so
        a launch is picked up within that time without a write transaction per poll. A
        relay with no permit to give is not asked about until it has one (relay.py)."""
        while not self._stopping.is_set():
            await self._sleep(self.poll_seconds)
            ask = functools.partial(queue.has_due_sends, skip_orgs=self._pools.skip_orgs())
            try:
                if await self._db(ask, write=False):
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
            await self._pools.renew()  # first: it must run even while the database is away
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

    async def _reap_pools(self) -> None:
        while True:
            await asyncio.sleep(REAP_SECONDS)
            try:
                await self._pools.reap_idle()
            except SQLAlchemyError as exc:
                log.error("worker.reap_failed", error=str(exc)[:500])

    async def _launch_scheduled(self) -> None:
        """Launch the scheduled campaigns whose time has come. Every worker looks; the
        launch's conditional UPDATE lets exactly one of them launch each campaign."""
        grace = self.settings.schedule_grace_seconds
        while True:
            await asyncio.sleep(SCHEDULE_POLL_SECONDS)
            try:
                due = await self._db(launch.due_scheduled, write=False)
                for campaign_id in due:
                    launch_it = functools.partial(
                        launch.launch_due, campaign_id=campaign_id, grace_seconds=grace
                    )
                    launched = await self._db(launch_it)
                    if launched is not None:
                        log.info(
                            "campaign.scheduled_launch",
                            campaign_id=str(campaign_id),
                            status=launched.status,
                            recipients=launched.recipients,
                        )
            except HeraldError as exc:  # the launch failed: the campaign is FAILED with why
                log.warning("campaign.scheduled_launch_failed", error=exc.message)
            except SQLAlchemyError as exc:
                log.error("worker.schedule_failed", error=str(exc)[:500])

    # -- one batch ------------------------------------------------------------------------

    def _load_job(self, session: Session, campaign_id: uuid.UUID) -> CampaignJob | None:
        """The campaign's composed message and its org's SMTP account (cached while unchanged).

        Conflict (no configuration, unreadable password) pauses the campaign with the reason.
        """
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return None
        account = load_mail_account(session, self.settings, campaign.org_id)
        smtp = dataclasses.replace(account.smtp, timeout=self.smtp_timeout)
        held = campaign.hold_reason is not None
        cached = self._jobs.get(campaign_id)
        wanted = (smtp, account.limits, account.bounce_address)
        if cached and (cached.smtp, cached.limits, cached.bounce_address) == wanted:
            return dataclasses.replace(cached, held=held) if cached.held != held else cached
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
        job = CampaignJob(
            campaign_id,
            campaign.org_id,
            campaign.name,
            message,
            smtp_address(message.envelope_from()),
            smtp,
            account.limits,
            held,
            account.bounce_address,
        )
        self._jobs[campaign_id] = job
        return job

    async def _process(self, batch: queue.Batch) -> None:
        """Send a batch chunk by chunk. One transaction records a chunk's outcomes and
        marks the next chunk in flight (with the relay's permits for it), so the database
        sees one commit per chunk. The batch ends early, giving its other sends back, when
        the campaign is no longer being sent or the relay has nothing more to give now."""
        remaining = list(batch.sends)
        self._held.update(s.id for s in batch.sends)  # the upkeep renews their leases
        self._pools.busy(batch.org_id, +1)
        due: Outcomes | None = None  # outcomes sent but not yet recorded
        grant: Grant | None = None  # the permits ``due`` was sent with
        job: CampaignJob | None = None
        try:
            job = await self._db(lambda s: self._load_job(s, batch.campaign_id), write=False)
            if job is None:
                return
            pool = await self._pools.pool_for(job.org_id, job.smtp, job.limits)
            if pool is None:  # other workers hold every connection slot to this relay
                return
            while remaining and not self._stopping.is_set():
                await pool.ensure_ready()
                start = functools.partial(
                    self._record_and_start,
                    job=job,
                    recorded=due,
                    recorded_grant=grant,
                    chunk=remaining[:DISPATCH_CHUNK],
                )
                plan = await self._db(start)
                due, grant = None, None
                if plan.taken == 0:
                    break
                remaining = remaining[plan.taken :]
                due, grant = await self._send_chunk(job, pool, plan), plan.grant
                remaining = due.unsent + remaining  # their permits ran out: next chunk
        except CredentialsRefused as exc:
            reply = str(exc.reply) if exc.reply else str(exc)
            await self._pause(batch.campaign_id, counters.refused_login_reason(reply))
        except ServerUnavailable as exc:
            await self._relay_unavailable(batch, job, exc, len(remaining[:DISPATCH_CHUNK]))
        except TooLate:
            pass  # this worker's connection slots were taken back: the rest goes back
        except Conflict as exc:  # no SMTP configuration, or its password is unreadable
            await self._pause(batch.campaign_id, f"{exc.message} Resume once it is fixed.")
        except SQLAlchemyError as exc:  # the database went away mid-batch
            log.error("batch.failed", campaign_id=str(batch.campaign_id), error=str(exc)[:500])
        except InvalidAddress as exc:  # the campaign's own sender address
            reason = f"The From address cannot be used ({exc}). Correct it, then resume."
            await self._pause(batch.campaign_id, reason)
        finally:
            ids = [s.id for s in remaining]
            last, last_grant = due, grant
            try:
                await self._db(lambda s: self._finish(s, job, last, last_grant, ids))
            except SQLAlchemyError as exc:
                # Nothing more to do here: what is in flight ends UNKNOWN when the lease
                # runs out, what was only claimed goes back to the queue.
                log.error(
                    "batch.finish_failed", campaign_id=str(batch.campaign_id), error=str(exc)[:500]
                )
            self._held.difference_update(s.id for s in batch.sends)
            self._pools.busy(batch.org_id, -1)

    def _record_and_start(
        self,
        session: Session,
        job: CampaignJob,
        recorded: Outcomes | None,
        recorded_grant: Grant | None,
        chunk: list[ClaimedSend],
    ) -> ChunkStart:
        """Record the last chunk; then, if the campaign is still being sent (its row locked
        by the record, so a pause or cancel waits for this commit or wins before it), take
        the relay's permits for the next chunk and mark that many sends in flight."""
        early = time.monotonic()  # the first read of the transaction: on PostgreSQL, its start
        now = db_now(session)
        read = (early, time.monotonic())
        state = self._record(session, job, recorded or Outcomes(), recorded_grant)
        nothing = ChunkStart(state, [], Outcomes(), 0, Grant(count=0))
        if not state.claimable:
            return nothing
        grant = relay.take_grant(
            session, job.org_id, job.limits, len(chunk), now, state.relay_resting_until
        )
        if grant.count == 0:
            return nothing
        taken = chunk if grant.count < 0 else chunk[: grant.count]
        go, skipped = queue.start_dispatch(session, self.owner, job.campaign_id, taken)
        relay.give_back(session, job.org_id, job.limits, grant, len(taken) - len(go), now)
        return ChunkStart(state, go, skipped, len(taken), grant, read)

    def _record(
        self, session: Session, job: CampaignJob, outcomes: Outcomes, grant: Grant | None
    ) -> counters.CampaignState:
        """Write a chunk's outcomes; a throttling answer starts the relay's backoff, permits
        that went unused go back, and a pause the outcomes caused is in the audit log."""
        state = queue.record_outcomes(
            session,
            self.owner,
            job.campaign_id,
            outcomes,
            self.settings.retry_base_seconds,
            self.settings.retry_window_seconds,
            self.settings.autopause_failures,
        )
        now = db_now(session)
        reply = outcomes.throttle_reply
        if reply is not None:
            until = relay.note_throttle(session, job.org_id, job.limits, reply, now)
            queue.defer_until(session, [s.id for s, _ in outcomes.throttled], until)
            state = dataclasses.replace(state, relay_resting_until=until)
            log.warning("relay.throttled", org_id=str(job.org_id), reply=reply[:200])
        if grant is not None and outcomes.late:
            relay.give_back(session, job.org_id, job.limits, grant, outcomes.late, now)
        control.note_self_pause(session, job.campaign_id, state)
        return state

    def _finish(
        self,
        session: Session,
        job: CampaignJob | None,
        outcomes: Outcomes | None,
        grant: Grant | None,
        unsent: list[int],
    ) -> None:
        """Record the last chunk, give back what was not started, lift a lapsed hold."""
        if job is not None and outcomes is not None:
            self._record(session, job, outcomes, grant)
            if job.held:
                counters.clear_hold(session, job.campaign_id)
        queue.release(session, self.owner, unsent)

    async def _pause(self, campaign_id: uuid.UUID, reason: str) -> None:
        await self._db(lambda s: control.pause_by_worker(s, campaign_id, reason))

    async def _relay_unavailable(
        self, batch: queue.Batch, job: CampaignJob | None, exc: ServerUnavailable, sends: int
    ) -> None:
        """The relay refused or could not be reached before a chunk: a throttling refusal
        rests the whole relay; anything else holds the campaign a while (nobody is failed)
        and counts the chunk's sends towards the run of failures that pauses it."""
        if exc.throttling and job is not None and exc.reply is not None:
            reply = str(exc.reply)
            limits = job.limits
            self._rests.rest(batch.org_id, FIRST_BACKOFF)  # its other batches too, at once
            await self._db(lambda s: relay.note_throttle(s, batch.org_id, limits, reply, db_now(s)))
            log.warning("relay.throttled", org_id=str(batch.org_id), reply=reply[:200])
            return
        log.warning("campaign.held", campaign_id=str(batch.campaign_id), reason=str(exc))
        hold = functools.partial(
            counters.hold_campaign,
            campaign_id=batch.campaign_id,
            reason=f"Sending is waiting: {exc}. Herald retries automatically.",
            seconds=self.settings.retry_base_seconds,
            failures=max(sends, 1),
            autopause_failures=self.settings.autopause_failures,
        )

        await self._db(lambda s: control.note_self_pause(s, batch.campaign_id, hold(s)))

    async def _send_chunk(self, job: CampaignJob, pool: Mailer, plan: ChunkStart) -> Outcomes:
        """Send the chunk's messages at once, or each at its slot when the relay's permits
        are paced (see ``_deliver``)."""
        outcomes = plan.skipped
        before_start = self._rests.before_start(job.org_id)
        results = await asyncio.gather(
            *(
                self._deliver(job, pool, plan, i, send, before_start)
                for i, send in enumerate(plan.go)
            ),
            return_exceptions=True,
        )
        for send, result in zip(plan.go, results, strict=True):
            if isinstance(result, BaseException):
                # A failure we did not foresee: the message may have gone out, so it is
                # never retried automatically.
                log.error("send.unexpected_error", send_id=send.id, error=repr(result)[:500])
                unexpected = f"Unexpected error while sending ({type(result).__name__})."
                result = Attempt(Outcome.UNKNOWN, unexpected)
            outcomes.add(send, result.outcome, result.detail, result.cause)
            if result.refused_login:
                outcomes.refused_login = result.detail
            if result.late:
                outcomes.late += 1
        return outcomes

    async def _deliver(
        self,
        job: CampaignJob,
        pool: Mailer,
        plan: ChunkStart,
        i: int,
        send: ClaimedSend,
        before_start: BeforeStart,
    ) -> Attempt:
        """One message of the chunk; when paced, never before its slot (counted from the
        latest the grant can have been made), never later than its lateness after it
        (counted from the earliest)."""
        not_after = None
        grant = plan.grant
        if grant.count > 0:
            earliest_grant, latest_grant = plan.granted_between
            slot = grant.slot(i)
            wait = latest_grant + slot - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            not_after = earliest_grant + slot + grant.lateness
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
            return Attempt(Outcome.FAILED, f"Not sent: the address cannot be used ({exc}).")
        sender = job.sender
        if job.bounce_address:
            sender = return_path(self._keys.tag, job.bounce_address, send.id)
        try:
            await pool.send(sender, rcpt, data, not_after, before_start)
            return DELIVERED
        except TooLate:
            return LATE
        except SmtpError as exc:
            reply = exc.reply
            if reply.credentials_refused:
                return Attempt(Outcome.UNSENT, str(reply), refused_login=True)
            if reply.throttling:
                return self._throttled(job, str(reply))
            outcome = Outcome.RETRY if reply.transient else Outcome.FAILED
            return Attempt(outcome, str(reply), Cause.RECIPIENT)
        except ConnectionLost as exc:
            if exc.phase is Phase.AFTER_DOT:
                return Attempt(
                    Outcome.UNKNOWN,
                    f"The connection was lost after the whole message was sent ({exc}); "
                    "it may have been delivered, so it is not re-sent automatically.",
                    Cause.RELAY,
                )
            return Attempt(Outcome.RETRY, str(exc), Cause.RELAY)
        except CredentialsRefused as exc:
            answer = str(exc.reply) if exc.reply else str(exc)
            return Attempt(Outcome.UNSENT, answer, refused_login=True)
        except ServerUnavailable as exc:
            if exc.throttling:
                return self._throttled(job, str(exc.reply))
            return Attempt(Outcome.RETRY, str(exc), Cause.RELAY)

    def _throttled(self, job: CampaignJob, reply: str) -> Attempt:
        """The relay said "slow down": this worker's other messages to it stop at once."""
        self._rests.rest(job.org_id, FIRST_BACKOFF)
        return Attempt(Outcome.THROTTLED, reply)
