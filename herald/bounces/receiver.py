"""Herald's SMTP receiver for bounce domains (``herald inbound``, and inside ``herald dev``).

It accepts mail only for its orgs' bounce addresses (with or without a VERP tag): any other
RCPT is answered 550, so it never relays. Messages over 10 MiB are refused with 552. A
message is answered 250 only once its report is committed (group commit: the reports that
arrive while one batch is written go together in the next transaction, on an engine whose
commits reach the disk); a report that could not be stored gets a 451, so the sender tries
again later. Bounce addresses set after the receiver started are accepted within a second.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, syntax
from aiosmtpd.smtp import Session as SmtpSession

from herald.bounces.ingest import Incoming, ingest, ingest_all
from herald.bounces.models import Source
from herald.bounces.smtpdata import read_data
from herald.db import unit_of_work
from herald.groupcommit import GroupCommit
from herald.log import get_logger
from herald.mail.reports import parse_report
from herald.mail.sendref import SendRefKeys
from herald.mailconfig.bounceaddress import bounce_addresses, return_path_org
from herald.runtime import Runtime

log = get_logger("herald.inbound")

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_RECIPIENTS = 100  # per message, the least RFC 5321 lets a server accept
BATCH = 200


class AddressBook:
    """Every org's bounce address, read again when an unknown one is asked for (at most once
    a second) and every ``max_age`` seconds: addresses set after the start are found, a
    flood of strangers' addresses costs one query a second."""

    def __init__(self, runtime: Runtime, max_age: float = 30.0, retry: float = 1.0) -> None:
        self.runtime = runtime
        self.max_age = max_age
        self.retry = retry
        self._addresses: dict[str, uuid.UUID] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def org_for(self, address: str) -> uuid.UUID | None:
        age = time.monotonic() - self._read_at
        found = return_path_org(self._addresses, address)
        if age > self.max_age or (found is None and age > self.retry):
            await self._read()
            found = return_path_org(self._addresses, address)
        return found

    async def _read(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at <= self.retry:
                return  # another connection just read them
            self._addresses = await asyncio.to_thread(self._query)
            self._read_at = time.monotonic()

    def _query(self) -> dict[str, uuid.UUID]:
        with unit_of_work(self.runtime.sessions, write=False) as session:
            return bounce_addresses(session)


@dataclass(frozen=True)
class _Delivery:
    org_id: uuid.UUID
    envelope_to: str
    raw: bytes
    also_to: tuple[str, ...] = ()  # the message's other recipients of this org


class UnreadableReport(Exception):
    """Reading the report failed (a bug the message found): it alone is answered 451, and
    the log names the error's type, never its words (they may quote the message)."""


def _incoming(delivery: _Delivery) -> tuple[Incoming, uuid.UUID] | UnreadableReport:
    try:
        parsed = parse_report(delivery.raw)
    except Exception as exc:
        return UnreadableReport(type(exc).__name__)
    incoming = Incoming(
        source=Source.SMTP,
        raw=delivery.raw,
        envelope_to=delivery.envelope_to,
        parsed=parsed,
        also_to=delivery.also_to,
    )
    return incoming, delivery.org_id


class BounceHandler:
    """aiosmtpd's hooks: RCPT checks the address book, DATA stores and then answers."""

    def __init__(self, runtime: Runtime, batch_size: int = BATCH) -> None:
        self.runtime = runtime
        self.keys = SendRefKeys.from_secret(runtime.settings.secret_key)
        self.addresses = AddressBook(runtime)
        self.batches: GroupCommit[_Delivery, int] = GroupCommit(self._write, batch_size)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients; send the others in another message"
        try:
            org_id = await self.addresses.org_for(address)
        except Exception as exc:  # the database is away: the sender tries again later
            log.error("inbound.address_lookup_failed", error=str(exc)[:300])
            return "451 4.3.0 Temporary failure looking up the address; try again later"
        if org_id is None:
            return "550 5.1.1 No such bounce address here (this server does not relay)"
        orgs: dict[str, uuid.UUID] = getattr(envelope, "herald_orgs", {})
        orgs[address] = org_id
        envelope.herald_orgs = orgs  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        content: Any = envelope.original_content or b""
        raw = bytes(content)
        orgs: dict[str, uuid.UUID] = getattr(envelope, "herald_orgs", {})
        rcpts: dict[uuid.UUID, list[str]] = {}
        for rcpt in dict.fromkeys(envelope.rcpt_tos):
            rcpts.setdefault(orgs[rcpt], []).append(rcpt)
        deliveries = [  # one report per org, however many of its addresses it was sent to
            _Delivery(org_id, first, raw, tuple(others))
            for org_id, (first, *others) in rcpts.items()
        ]
        try:
            if len(deliveries) == 1:  # nearly always: one return path per bounce
                await self.batches.submit(deliveries[0])
            else:
                await asyncio.gather(*(self.batches.submit(d) for d in deliveries))
        except Exception as exc:  # not stored: the sender keeps it and tries again
            log.error("inbound.store_failed", error=str(exc)[:300], size=len(raw))
            return "451 4.3.0 The report could not be stored; try again later"
        return "250 2.0.0 Stored"

    def _write(self, deliveries: list[_Delivery]) -> Sequence[int | BaseException]:
        """The batch's reports read, then ingested together in one transaction.

        They are read here, in the batch's thread (never in the event loop: even bounded,
        herald.mail.reports, a hostile message costs a fraction of a second of CPU, which
        every session would wait for), before the transaction begins: one hop to a thread
        per batch rather than one more per report. Should one report fail to be written (a
        bug, odd data), the batch is rolled back and its reports written again one
        transaction each, so only that one is answered 451 and the others still commit."""
        read = [_incoming(d) for d in deliveries]
        readable = [r for r in read if not isinstance(r, UnreadableReport)]
        if not readable:
            return [r for r in read if isinstance(r, UnreadableReport)]
        try:
            with unit_of_work(self.runtime.sessions) as session:
                ingested = iter(ingest_all(session, self.keys, readable))
            return [r if isinstance(r, UnreadableReport) else next(ingested).raw_id for r in read]
        except Exception:
            if len(deliveries) == 1:
                raise
        results: list[int | BaseException] = []
        for delivery, report in zip(deliveries, read, strict=True):
            if isinstance(report, UnreadableReport):
                results.append(report)
                continue
            try:
                with unit_of_work(self.runtime.sessions) as session:
                    results.append(ingest(session, self.keys, *report).raw_id)
            except Exception as exc:  # this report alone is refused (451), logged here
                log.error("inbound.report_failed", error=repr(exc)[:300], size=len(delivery.raw))
                results.append(exc)
        return results

    async def handle_exception(self, error: Exception) -> str:
        """An unforeseen error in a session: logged here; the sender is only told to try
        again (never an exception's words)."""
        log.error("inbound.session_failed", error=type(error).__name__)
        return "451 4.3.0 Temporary failure; try again later"

    async def close(self) -> None:
        await self.batches.close()


# A plain path: <dot-atom@domain>, then nothing or one space and the parameters
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?: ([^\s(].*))?"
)


class BounceSMTP(SMTP):
    """aiosmtpd's session, reading a plain MAIL or RCPT path without the email package's
    header parser (aiosmtpd builds a class and a token tree for each address: a tenth of
    a report's CPU here, docs/performance.md); any other path is aiosmtpd's to read, and
    the answer is the same (tests/bounces/test_receiver_paths.py). DATA is read in bulk
    (herald.bounces.smtpdata), with aiosmtpd's answers (tests/bounces/test_receiver_data.py,
    which also pins the aiosmtpd internals used here: _reader, _writer, _decode_data,
    _set_post_data_state)."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if self._decode_data or getattr(self.event_handler, "handle_DATA", None) is None:
            return await super().smtp_DATA(arg)  # not how Herald runs it: aiosmtpd's own
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return None
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            return await self.push("503 Error: need RCPT command")
        if arg:
            return await self.push("501 Syntax: DATA")
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:  # the connection was lost meanwhile (as aiosmtpd)
            self._writer.close()
            raise
        if isinstance(content, str):  # the section was refused (too long, too much)
            await self.push(content)
            return self._set_post_data_state()
        self.envelope.content = self.envelope.original_content = content
        status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
        self._set_post_data_state()
        return await self.push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if arg == "<>":
            return "<>", ""  # the null sender of every bounce, as aiosmtpd reads it
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, rest = plain.group(1), plain.group(2) or ""
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


def smtp_factory(handler: BounceHandler, hostname: str | None = None) -> SMTP:
    return BounceSMTP(
        handler,
        data_size_limit=MAX_MESSAGE_BYTES,
        hostname=hostname,
        ident="Herald bounce receiver",
        timeout=60,
    )


class InboundServer:
    """The receiver on ``host:port`` in the running event loop."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.runtime = runtime
        self.host, self.port = host, port
        self.handler = BounceHandler(runtime)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: smtp_factory(self.handler),
            host=self.host,
            port=self.port,
            reuse_address=True,
            reuse_port=True,  # several `herald inbound` on one port share its connections
        )
        log.info("inbound.started", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.handler.close()
        log.info("inbound.stopped")


class InboundThread:
    """The receiver on its own thread and event loop (``herald dev``, tests); ``start``
    returns once it accepts connections, ``stop`` after the reports in hand are stored."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.server = InboundServer(runtime, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.server.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="herald-inbound", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the bounce receiver did not start")

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None
