"""The one way a bounce or complaint report enters Herald, whatever its source.

Every source — Herald's SMTP receiver (``herald inbound``), a bounce mailbox polled over
IMAP, a mail service's webhook (SES, SendGrid, Mailgun, Postmark) and the API — builds an
``Incoming`` and calls ``ingest`` in its own unit of work. ``ingest`` then, in the caller's
transaction (it only flushes; the caller commits, and a receiver answers only after that):

1. records the report as received (``RawReport``: up to 256 KiB of its bytes) — the same
   bytes to the same address twice are one report: the second call records nothing and
   returns the first one's rows with ``repeat=True`` (not for the API, whose body says the
   same of every campaign: there step 4 alone counts each event once);
2. reads it: a mail message is parsed here (RFC 3464 DSN, RFC 5965 feedback report, other
   servers' bounces via flufl.bounce, auto-replies and delay notices) unless the caller
   parsed it already (``parsed``, e.g. outside its transaction) or a service classified
   it (``events``: one per recipient, type hard / soft / complaint / ignored);
3. matches each recipient to a send of the org: the VERP tag of ``envelope_to`` first (a
   tag failing its HMAC makes the report ``unmatched``, with no fallback), else the
   original Message-ID (Herald's own carry an HMAC), else the address, to the org's
   latest DELIVERED or BOUNCED send to it; a bounce or complaint matching nothing is
   ``unmatched``; what is ignored stays ``ignored``, matched or not;
4. counts each event once: the same original message (or send), recipient and type again
   is recorded as ``ignored`` ("a repeat") and changes nothing;
5. applies the effects (herald.marketing.feedback, herald.crm.emailstatus): the send
   BOUNCED and the campaign's counters moved (one UPDATE of the campaign row), the contact's
   emailStatus BOUNCED on a hard bounce or after ``softBounceLimit`` soft-bouncing campaigns
   in a row; a complaint sets the send's complainedAt, the campaign's complaints, and
   opts the contact out with emailStatus COMPLAINED.

It returns what it recorded (one ``Recorded`` per recipient, at least one per report). It
raises only for a caller's mistake (no org and an ``envelope_to`` that is no org's bounce
address: ``UnknownBounceAddress``); any report, however malformed, is recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy.orm import Session

from herald.bounces.models import RAW_KEPT_BYTES, BounceReport, ReportType, Source
from herald.bounces.repository import BounceRepository
from herald.crm import emailstatus
from herald.db import utcnow
from herald.errors import NotFound
from herald.log import get_logger
from herald.mail.reports import Kind, ParsedReport, parse_report
from herald.mail.sendref import SendRefKeys, read_message_id, read_tag, split_return_path
from herald.mailconfig.bounceaddress import bounce_addresses, bounce_settings, return_path_org
from herald.marketing import feedback
from herald.marketing.feedback import SendFacts
from herald.text import MAX_REASON, one_line, storable

log = get_logger("herald.bounces")

EventType = ReportType  # hard | soft | complaint | ignored (an Event is never "unmatched")


class UnknownBounceAddress(NotFound):
    code = "unknown_bounce_address"


@dataclass(frozen=True)
class Event:
    """One recipient's fate, as a mail service (or the API) already classified it."""

    type: EventType
    email: str = ""
    reason: str = ""
    # the original message's Message-ID, with or without <>; Herald's own name their send
    message_id: str | None = None
    status_code: str | None = None  # an enhanced status code, e.g. "5.1.1", when known


@dataclass(frozen=True)
class Incoming:
    """A report as it arrived, and what is known of it.

    ``raw``: the bytes as received (a mail message for smtp/imap, the request body for a
    webhook or the API). ``envelope_to``: the address it was delivered to (the SMTP RCPT,
    or a mailbox message's Delivered-To / X-Original-To), whose VERP tag names the send.
    Give ``events`` when a service classified the report, else it is parsed as a mail
    message (``parsed``, when the caller did that already).
    """

    source: Source
    raw: bytes
    envelope_to: str | None = None
    events: Sequence[Event] | None = None
    parsed: ParsedReport | None = None
    received_at: dt.datetime | None = None
    # The message's other envelope recipients of the org (one SMTP transaction to several
    # return paths): the report is stored once, its events recorded for each address.
    also_to: tuple[str, ...] = ()

    def addresses(self) -> tuple[str | None, ...]:
        return (self.envelope_to, *self.also_to)


@dataclass(frozen=True)
class Recorded:
    """One recipient of a report as recorded (what ``GET /bounces`` shows of it)."""

    id: int
    raw_id: int
    received_at: dt.datetime
    source: str
    type: str  # hard | soft | complaint | ignored | unmatched
    email: str
    send_id: int | None
    campaign_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    matched_by: str | None
    reason: str
    status_code: str | None
    original_message_id: str | None

    @classmethod
    def of(cls, report_id: int, values: dict[str, Any]) -> Recorded:
        names = [f.name for f in fields(cls) if f.name != "id"]
        return cls(report_id, *(values[name] for name in names))

    @classmethod
    def from_row(cls, row: BounceReport) -> Recorded:
        return cls.of(row.id, {f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Ingested:
    raw_id: int
    reports: list[Recorded] = field(default_factory=list)
    repeat: bool = False  # the same bytes were recorded before: nothing new


def find_org(session: Session, envelope_to: str) -> uuid.UUID | None:
    """The org whose bounce address ``envelope_to`` is (with or without a tag)."""
    return return_path_org(bounce_addresses(session), envelope_to)


def ingest(
    session: Session,
    keys: SendRefKeys,
    incoming: Incoming,
    org_id: uuid.UUID | None = None,
) -> Ingested:
    """Record, match and apply one report in the caller's transaction (see the module)."""
    if org_id is None:
        org_id = find_org(session, incoming.envelope_to or "")
        if org_id is None:
            raise UnknownBounceAddress("No organisation has this bounce address.")
    incoming = _storable_addresses(incoming)
    repo = BounceRepository(session, org_id)
    digest = _digest(incoming)
    at = incoming.received_at or utcnow()
    source = Source(incoming.source).value
    raw_id = repo.insert_raw(
        {
            "received_at": at,
            "source": source,
            "envelope_to": (incoming.envelope_to or None) and incoming.envelope_to[:320],
            "sha256": digest,
            "size": len(incoming.raw),
            "content": incoming.raw[:RAW_KEPT_BYTES],
        }
    )
    if raw_id is None:  # the same bytes to the same address: recorded before
        earlier = repo.raw_by_digest(digest)
        assert earlier is not None
        reports = [Recorded.from_row(row) for row in repo.reports_of_raw(earlier.id)]
        return Ingested(earlier.id, reports, repeat=True)
    events, message_ids = _events(incoming)
    reports = []
    for address in incoming.addresses():
        context = _Context(session, repo, keys, org_id, raw_id, source, at, _tag_of(address))
        reports += [context.record(event, message_ids) for event in events]
    return Ingested(raw_id, reports)


def _digest(incoming: Incoming) -> str:
    """The same bytes to the same addresses are the same report. Not so for the API: its
    body says the same of every campaign's send, and what counts once is the event."""
    if incoming.source == Source.API:
        return secrets.token_hex(32)
    addresses = "".join((address or "").lower() + "\n" for address in incoming.addresses())
    hashed = hashlib.sha256(addresses.encode("utf-8"))
    hashed.update(incoming.raw)
    return hashed.hexdigest()


def _storable_addresses(incoming: Incoming) -> Incoming:
    """Envelope addresses as they can be stored (a NUL is refused by PostgreSQL)."""
    if incoming.envelope_to is None:
        return incoming
    return replace(
        incoming,
        envelope_to=storable(incoming.envelope_to),
        also_to=tuple(storable(address) for address in incoming.also_to),
    )


def _storable_event(event: Event) -> Event:
    """The event's text as it can be stored: a report's words are anyone's."""
    return Event(
        event.type,
        storable(event.email),
        storable(event.reason),
        storable(event.message_id) if event.message_id else None,
        storable(event.status_code) if event.status_code else None,
    )


def _tag_of(envelope_to: str | None) -> str | None:
    return split_return_path(envelope_to).tag if envelope_to else None


def _events(incoming: Incoming) -> tuple[list[Event], tuple[str, ...]]:
    """The events of a report (at least one), and the Message-IDs it quotes, storable."""
    events, message_ids = _read(incoming)
    return [_storable_event(e) for e in events], tuple(storable(i) for i in message_ids)


def _read(incoming: Incoming) -> tuple[list[Event], tuple[str, ...]]:
    if incoming.events is not None:
        events = list(incoming.events) or [Event(ReportType.IGNORED, reason="No event.")]
        return events, ()
    parsed = incoming.parsed or parse_report(incoming.raw)
    if parsed.kind is Kind.IGNORED or not parsed.recipients:
        email = parsed.recipients[0].email if parsed.recipients else ""
        return [Event(ReportType.IGNORED, email, parsed.reason)], parsed.message_ids
    events = []
    for recipient in parsed.recipients:
        if parsed.kind is Kind.COMPLAINT:
            kind = ReportType.COMPLAINT
        else:
            kind = ReportType.HARD if recipient.hard else ReportType.SOFT
        reason = recipient.diagnostic or parsed.reason
        events.append(Event(kind, recipient.email, reason, None, recipient.status))
    return events, parsed.message_ids


@dataclass
class _Context:
    session: Session
    repo: BounceRepository
    keys: SendRefKeys
    org_id: uuid.UUID
    raw_id: int
    source: str
    at: dt.datetime
    tag: str | None

    def record(self, event: Event, message_ids: tuple[str, ...]) -> Recorded:
        ids = (event.message_id, *message_ids) if event.message_id else message_ids
        send, matched_by, problem = self._match(event, ids)
        kind = ReportType(event.type)
        reason = one_line(event.reason)
        if kind is not ReportType.IGNORED and send is None:
            # why nothing matched, then what the report said
            kind, reason = ReportType.UNMATCHED, " ".join(filter(None, (problem, reason)))
        values: dict[str, Any] = {
            "raw_id": self.raw_id,
            "received_at": self.at,
            "source": self.source,
            "type": kind.value,
            "email": (event.email or (send.email if send else ""))[:320],
            "send_id": send.id if send else None,
            "campaign_id": send.campaign_id if send else None,
            "contact_id": send.contact_id if send else None,
            "matched_by": matched_by,
            "reason": reason[:MAX_REASON],
            "status_code": (event.status_code or None) and event.status_code[:16],
            "original_message_id": ids[0][:998] if ids else None,
        }
        values["event_key"] = key = _event_key(self.org_id, values, ids)
        new_id = self.repo.insert_report(values)
        if new_id is None:  # this event was counted already: recorded as a repeat
            assert key is not None
            counted = self.repo.counted_id(key)
            values.update(
                type=ReportType.IGNORED.value,
                event_key=None,
                reason=f"A repeat of report {counted} (same message, recipient and type): "
                "counted once.",
            )
            return Recorded.of(self.repo.insert_report(values) or 0, values)
        if send is not None and kind in _EFFECTIVE:
            self._apply(kind, send, new_id, values["reason"])
        log.info(
            "bounce.recorded",
            report_id=new_id,
            type=kind.value,
            source=self.source,
            send_id=values["send_id"],
            matched_by=matched_by,
        )
        return Recorded.of(new_id, values)

    def _match(
        self, event: Event, message_ids: tuple[str, ...]
    ) -> tuple[SendFacts | None, str | None, str | None]:
        """(the send, how it was found, why none was) — see the module, step 3."""
        if self.tag is not None:
            send_id = read_tag(self.keys.tag, self.tag)
            if send_id is None:
                return None, None, "The return path's tag failed its check (forged or damaged)."
            send = feedback.send_facts(self.session, self.org_id, send_id)
            if send is None:
                return None, None, "The return path's tag names no send of this organisation."
            return send, "tag", None
        for message_id in message_ids:
            send_id = read_message_id(self.keys.message_id, message_id)
            if send_id is not None:
                send = feedback.send_facts(self.session, self.org_id, send_id)
                if send is not None:
                    return send, "message_id", None
        if event.email:
            send = feedback.latest_delivered_send(self.session, self.org_id, event.email)
            if send is not None:
                return send, "address", None
        return None, None, "No delivered send of this organisation matches it."

    def _apply(self, kind: ReportType, send: SendFacts, report_id: int, diagnostic: str) -> None:
        if kind is ReportType.COMPLAINT:
            feedback.record_complaint(self.session, send, self.at)
            if send.contact_id is not None:
                emailstatus.mark_complained(
                    self.session,
                    self.org_id,
                    send.contact_id,
                    reason=f"Marked a campaign as spam ({self.source} report {report_id}).",
                    at=self.at,
                )
            return
        hard = kind is ReportType.HARD
        feedback.record_bounce(self.session, send, hard=hard, reason=diagnostic, at=self.at)
        if send.contact_id is None:
            return
        # Only while the bounced address is still the contact's (mark_bounced checks it): a
        # bounce of an old address says nothing of the new one.
        if hard:
            reason = f"Hard bounce: {diagnostic}"
        else:
            contact = emailstatus.contact_address(self.session, self.org_id, send.contact_id)
            if contact is None or contact.email_key != send.email.lower():
                return
            limit = bounce_settings(self.session, self.org_id).soft_bounce_limit
            run = feedback.bounced_campaigns_in_a_row(
                self.session, send, since=contact.email_status_at, limit=limit
            )
            if run < limit:
                return
            reason = f"Soft bounces on {run} campaigns in a row; the last: {diagnostic}"
        emailstatus.mark_bounced(
            self.session,
            self.org_id,
            send.contact_id,
            address=send.email,
            reason=reason,
            at=self.at,
        )


_EFFECTIVE = (ReportType.HARD, ReportType.SOFT, ReportType.COMPLAINT)


def _event_key(org_id: uuid.UUID, row: dict[str, Any], message_ids: tuple[str, ...]) -> str | None:
    """What makes two reports the same event: the original message (the send it matched,
    else its Message-ID), the recipient and the type. None when nothing identifies it."""
    if row["type"] == ReportType.IGNORED.value:
        return None
    if row["send_id"] is not None:  # Herald's Message-IDs each name one send
        subject = f"send:{row['send_id']}"
    elif message_ids:
        subject = "message:" + message_ids[0].strip().strip("<>").lower()
    else:
        return None
    text = f"{org_id}|{subject}|{row['email'].lower()}|{row['type']}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
