"""The one way a bounce or complaint report enters Herald, whatever its source.

Every source — Herald's SMTP receiver (``herald inbound``), a bounce mailbox polled over
IMAP, a mail service's webhook (SES, SendGrid, Mailgun, Postmark) and the API — builds an
``Incoming`` and calls ``ingest`` (one report) or ``ingest_all`` (a batch: the receiver's
group commit, the stored webhook calls) in its own unit of work. Then, in the caller's
transaction (it only flushes; the caller commits, and a receiver answers only after that),
each step below runs for the whole batch at once:

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

from herald.bounces import repository
from herald.bounces.models import RAW_KEPT_BYTES, BounceReport, ReportType, Source
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


def ingest(
    session: Session,
    keys: SendRefKeys,
    incoming: Incoming,
    org_id: uuid.UUID | None = None,
) -> Ingested:
    """Record, match and apply one report in the caller's transaction (see the module)."""
    return ingest_all(session, keys, [(incoming, org_id)])[0]


def ingest_all(
    session: Session,
    keys: SendRefKeys,
    batch: Sequence[tuple[Incoming, uuid.UUID | None]],
) -> list[Ingested]:
    """``ingest`` for each (report, org) of a batch, in one transaction, each step run for
    the whole batch at once: a few statements per batch instead of a few per report, which
    is what lets a receiver keep up with a flood. The outcome is that of ingesting them one
    after another, in order: events about the same send, contact or event go in rounds
    (see ``_round``), each round seeing what the one before did."""
    reports = _arrivals(session, batch)
    _record_raw(session, reports)
    pending = [
        _Pending(report, slot, tag, event)
        for report in reports
        for slot, (tag, event) in enumerate(report.events)
    ]
    while pending:
        pending = _round(session, keys, pending)
    return [report.result() for report in reports]


@dataclass(eq=False)
class _Report:
    """One report of a batch, as it goes through the steps."""

    incoming: Incoming
    org_id: uuid.UUID
    digest: str
    at: dt.datetime
    source: str
    tags: tuple[str | None, ...]  # of each address it was delivered to (see Incoming)
    raw_id: int = 0
    same_as: _Report | None = None  # the same bytes earlier in this batch
    earlier: list[Recorded] | None = None  # the same bytes, recorded before this batch
    # each address's events (an address's tag, an event), in order
    events: list[tuple[str | None, Event]] = field(default_factory=list)
    message_ids: tuple[str, ...] = ()
    recorded: list[Recorded | None] = field(default_factory=list)  # by event, once recorded

    def result(self) -> Ingested:
        if self.same_as is not None:
            first = self.same_as.result()
            return Ingested(first.raw_id, first.reports, repeat=True)
        if self.earlier is not None:
            return Ingested(self.raw_id, self.earlier, repeat=True)
        reports = [r for r in self.recorded if r is not None]
        assert len(reports) == len(self.events), "every event is recorded in some round"
        return Ingested(self.raw_id, reports)


@dataclass(eq=False)
class _Pending:
    """An event of a report, waiting for its round."""

    report: _Report
    slot: int
    tag: str | None
    event: Event

    @property
    def message_ids(self) -> tuple[str, ...]:
        quoted = self.report.message_ids
        return (self.event.message_id, *quoted) if self.event.message_id else quoted


def _arrivals(
    session: Session, batch: Sequence[tuple[Incoming, uuid.UUID | None]]
) -> list[_Report]:
    addresses: dict[str, uuid.UUID] | None = None
    reports = []
    for incoming, org_id in batch:
        if org_id is None:
            if addresses is None:
                addresses = bounce_addresses(session)
            org_id = return_path_org(addresses, incoming.envelope_to or "")
            if org_id is None:
                raise UnknownBounceAddress("No organisation has this bounce address.")
        incoming = _storable_addresses(incoming)
        at = incoming.received_at or utcnow()
        source = Source(incoming.source).value
        tags = tuple(_tag_of(address) for address in incoming.addresses())
        reports.append(_Report(incoming, org_id, _digest(incoming), at, source, tags))
    return reports


def _record_raw(session: Session, reports: list[_Report]) -> None:
    """Step 1 (see the module) for the batch: one INSERT of the new bytes; the reports of
    bytes seen before (earlier, or earlier in this batch) are the first one's."""
    firsts: dict[repository.OrgKey, _Report] = {}
    for report in reports:
        first = firsts.setdefault((report.org_id, report.digest), report)
        if first is not report:
            report.same_as = first
    rows = [
        {
            "org_id": r.org_id,
            "received_at": r.at,
            "source": r.source,
            "envelope_to": (r.incoming.envelope_to or None) and r.incoming.envelope_to[:320],
            "sha256": r.digest,
            "size": len(r.incoming.raw),
            "content": r.incoming.raw[:RAW_KEPT_BYTES],
        }
        for r in firsts.values()
    ]
    new = repository.insert_raws(session, rows)
    known = repository.raws_by_digest(session, firsts.keys() - new.keys())
    earlier = repository.reports_of_raws(session, {(org, i) for (org, _), i in known.items()})
    for key, report in firsts.items():
        if key in new:
            report.raw_id = new[key]
            events, report.message_ids = _events(report.incoming)
            # one message to several of the org's return paths: each address's events
            report.events = [(tag, event) for tag in report.tags for event in events]
            report.recorded = [None] * len(report.events)
        else:  # the same bytes to the same address: recorded before
            report.raw_id = known[key]
            report.earlier = [Recorded.from_row(row) for row in earlier[report.raw_id]]


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


def _round(session: Session, keys: SendRefKeys, pending: list[_Pending]) -> list[_Pending]:
    """Steps 3 to 5 (see the module) for the pending events that share no send, contact or
    event key with an earlier one of them; those that do wait for the next round, in order,
    and are matched again then, seeing what this round did. A flood of bounces about
    distinct sends is one round."""
    now: list[tuple[_Pending, Match, dict[str, Any]]] = []
    later: list[_Pending] = []
    taken: set[object] = set()
    for p, match in zip(pending, match_all(session, keys, pending), strict=True):
        values = _values(p, match)
        touched = match.touches(values)
        if touched & taken:
            later.append(p)
        else:
            now.append((p, match, values))
        taken |= touched
    rows = [values for _, _, values in now]
    repeats = _count_once(session, rows)
    ids = repository.insert_reports(session, rows)
    lost = [i for i, report_id in enumerate(ids) if report_id is None]
    if lost:  # another process counted one of these events just now: repeats after all
        again = [rows[i] for i in lost]
        repeats |= _count_once(session, again)
        for i, report_id in zip(lost, repository.insert_reports(session, again), strict=True):
            ids[i] = report_id
    recorded = [Recorded.of(i or 0, values) for i, values in zip(ids, rows, strict=True)]
    _apply_all(
        session,
        [(p, m, r) for (p, m, v), r in zip(now, recorded, strict=True) if id(v) not in repeats],
    )
    for (p, _, values), report in zip(now, recorded, strict=True):
        p.report.recorded[p.slot] = report
        if id(values) not in repeats:
            log.info(
                "bounce.recorded",
                report_id=report.id,
                type=report.type,
                source=report.source,
                send_id=report.send_id,
                matched_by=report.matched_by,
            )
    return later


@dataclass(frozen=True)
class Match:
    """What a report's event is about: the send, how it was found, or why none was."""

    send: SendFacts | None = None
    by: str | None = None  # "tag", "message_id" or "address"
    problem: str | None = None

    def touches(self, values: dict[str, Any]) -> set[object]:
        """What recording it reads and changes besides its own rows."""
        found: set[object] = set()
        if self.send is not None:
            found.add(("send", self.send.id))
            if self.send.contact_id is not None:
                found.add(("contact", self.send.contact_id))
        if values["event_key"] is not None:
            found.add(("event", values["org_id"], values["event_key"]))
        return found


_FORGED = Match(problem="The return path's tag failed its check (forged or damaged).")
_NO_SUCH_SEND = Match(problem="The return path's tag names no send of this organisation.")
_NOTHING = Match(problem="No delivered send of this organisation matches it.")


def match_all(session: Session, keys: SendRefKeys, pending: list[_Pending]) -> list[Match]:
    """Step 3 for a round: the sends that tags and Message-IDs name, in one query; for the
    events they leave unmatched, the addresses' contacts in one query and each such
    contact's latest delivered send."""
    named: list[tuple[str, list[int]] | Match] = []
    tags: dict[str, int | None] = {}
    for p in pending:
        tag = p.tag
        if tag is None:
            found = (read_message_id(keys.message_id, m) for m in p.message_ids)
            named.append(("message_id", [i for i in found if i is not None]))
            continue
        if tag not in tags:
            tags[tag] = read_tag(keys.tag, tag)
        send_id = tags[tag]
        named.append(_FORGED if send_id is None else ("tag", [send_id]))
    wanted = {
        (p.report.org_id, send_id)
        for p, n in zip(pending, named, strict=True)
        if not isinstance(n, Match)
        for send_id in n[1]
    }
    facts = feedback.sends_facts(session, wanted)
    matches: list[Match | None] = []
    for p, n in zip(pending, named, strict=True):
        if isinstance(n, Match):
            matches.append(n)
            continue
        by, send_ids = n
        org_id = p.report.org_id
        send = next((facts[org_id, i] for i in send_ids if (org_id, i) in facts), None)
        if send is not None:
            matches.append(Match(send, by))
        else:  # a tag names its send or nothing; without one, the address is tried next
            matches.append(_NO_SUCH_SEND if by == "tag" else None)
    return _by_address(session, pending, matches)


def _by_address(
    session: Session, pending: list[_Pending], matches: list[Match | None]
) -> list[Match]:
    """The events left unmatched: the org's latest delivered send to the address, whoever's
    contact it was (one query per address: rare beside tags and Message-IDs)."""
    latest: dict[tuple[uuid.UUID, str], SendFacts | None] = {}
    found: list[Match] = []
    for p, match in zip(pending, matches, strict=True):
        if match is None:
            org_id, email = p.report.org_id, p.event.email
            key = (org_id, email.lower())
            if email and key not in latest:
                latest[key] = feedback.latest_delivered_send(session, org_id, email)
            send = latest.get(key)
            match = _NOTHING if send is None else Match(send, "address")
        found.append(match)
    return found


def _values(p: _Pending, match: Match) -> dict[str, Any]:
    """The report's row for this event."""
    event, report, send = p.event, p.report, match.send
    ids = p.message_ids
    kind = ReportType(event.type)
    reason = one_line(event.reason)
    if kind is not ReportType.IGNORED and send is None:
        # why nothing matched, then what the report said
        kind, reason = ReportType.UNMATCHED, " ".join(filter(None, (match.problem, reason)))
    values: dict[str, Any] = {
        "org_id": report.org_id,
        "raw_id": report.raw_id,
        "received_at": report.at,
        "source": report.source,
        "type": kind.value,
        "email": (event.email or (send.email if send else ""))[:320],
        "send_id": send.id if send else None,
        "campaign_id": send.campaign_id if send else None,
        "contact_id": send.contact_id if send else None,
        "matched_by": match.by,
        "reason": reason[:MAX_REASON],
        "status_code": (event.status_code or None) and event.status_code[:16],
        "original_message_id": ids[0][:998] if ids else None,
    }
    values["event_key"] = _event_key(report.org_id, values, ids)
    return values


def _count_once(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """Step 4: the rows whose event was counted already become repeats (recorded as
    ignored, changing nothing); the ``id()`` of each of them."""
    keys = {(row["org_id"], row["event_key"]) for row in rows if row["event_key"] is not None}
    counted = repository.counted_ids(session, keys)
    repeats = set()
    for row in rows:
        first = counted.get((row["org_id"], row["event_key"]))
        if first is not None:
            row.update(
                type=ReportType.IGNORED.value,
                event_key=None,
                reason=f"A repeat of report {first} (same message, recipient and type): "
                "counted once.",
            )
            repeats.add(id(row))
    return repeats


_EFFECTIVE = (ReportType.HARD, ReportType.SOFT, ReportType.COMPLAINT)


def _apply_all(session: Session, counted: list[tuple[_Pending, Match, Recorded]]) -> None:
    """Step 5 for a round's counted events: the sends' bounces together, the contacts'
    email statuses together; complaints, and soft bounces' runs, one by one."""
    bounces: list[feedback.Bounce] = []
    soft: list[tuple[_Report, SendFacts, str]] = []
    marks: list[emailstatus.BounceMark] = []
    for p, match, report in counted:
        kind, send = ReportType(report.type), match.send
        if send is None or kind not in _EFFECTIVE:
            continue
        org_id, at = p.report.org_id, p.report.at
        if kind is ReportType.COMPLAINT:
            feedback.record_complaint(session, send, at)
            if send.contact_id is not None:
                emailstatus.mark_complained(
                    session,
                    org_id,
                    send.contact_id,
                    reason=f"Marked a campaign as spam ({report.source} report {report.id}).",
                    at=at,
                )
            continue
        bounces.append(feedback.Bounce(send, kind is ReportType.HARD, report.reason, at))
        if send.contact_id is None:
            continue
        # Only while the bounced address is still the contact's (mark_bounced checks it): a
        # bounce of an old address says nothing of the new one.
        if kind is ReportType.HARD:
            reason = f"Hard bounce: {report.reason}"
            marks.append(emailstatus.BounceMark(org_id, send.contact_id, send.email, reason, at))
        else:
            soft.append((p.report, send, report.reason))
    feedback.record_bounces(session, bounces)
    limits: dict[uuid.UUID, int] = {}
    for arrival, send, diagnostic in soft:
        org_id = arrival.org_id
        assert send.contact_id is not None
        contact = emailstatus.contact_address(session, org_id, send.contact_id)
        if contact is None or contact.email_key != send.email.lower():
            continue
        if org_id not in limits:
            limits[org_id] = bounce_settings(session, org_id).soft_bounce_limit
        run = feedback.bounced_campaigns_in_a_row(
            session, send, since=contact.email_status_at, limit=limits[org_id]
        )
        if run >= limits[org_id]:
            reason = f"Soft bounces on {run} campaigns in a row; the last: {diagnostic}"
            marks.append(
                emailstatus.BounceMark(org_id, send.contact_id, send.email, reason, arrival.at)
            )
    emailstatus.mark_bounced(session, marks)


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
