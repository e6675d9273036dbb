"""Reports ingested as a batch (herald.bounces.ingest.ingest_all, what the receiver and the
webhook drain do under a flood) come to exactly what ingesting them one after another does:
the same reports, the same sends, counters and contacts; and what another process does
between the batch's steps is not counted twice."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from herald.bounces import receiver, repository
from herald.bounces.ingest import Event, Incoming, Ingested, ingest_all
from herald.bounces.models import ReportType, Source
from herald.bounces.receiver import BounceHandler, _Delivery
from herald.bounces.webhooks.models import WebhookDelivery
from herald.db import unit_of_work
from herald.dev.bouncer import feedback_report
from herald.mail.reports import parse_report
from herald.mail.sendref import make_message_id, return_path
from herald.marketing import feedback
from herald.runtime import Runtime
from tests.bounces import payloads
from tests.bounces.arrange import ingest_stored
from tests.bounces.factories import (
    SOFT,
    BounceOrg,
    bounce,
    bounce_org,
    contact,
    contact_row,
    delivered_campaign,
    dsn_for,
    receive,
    reports_of,
    tagged,
)
from tests.marketing.engine import assert_counters_match_sends
from tests.marketing.factories import get_campaign_row, get_send

SAMPLES = Path(__file__).parent / "samples"


@dataclass
class Scene:
    """One org's campaigns and the reports that arrive about them, in order."""

    org: BounceOrg
    campaigns: list[uuid.UUID]
    sends: list[int]
    contacts: list[uuid.UUID]
    emails: list[str]
    arrivals: list[Incoming]

    def said(self, text: str, place: dict[int, tuple[int, int]]) -> str:
        """``text`` with the scene's addresses and report ids in terms both scenes share."""
        for n, email in enumerate(self.emails):
            text = text.replace(email, f"person{n}")
        return re.sub(r"report (\d+)", lambda m: f"report {place[int(m[1])]}", text)


def scene(runtime: Runtime) -> Scene:
    org = bounce_org(runtime, soft_bounce_limit=2)
    people = [contact(runtime, org) for _ in range(5)]
    first, sends = delivered_campaign(runtime, org, people)
    second, later = delivered_campaign(runtime, org, people[2:4])
    keys = org.keys(runtime)

    def at_tag(send_id: int, raw: bytes) -> Incoming:
        return Incoming(Source.SMTP, raw, envelope_to=tagged(runtime, org, send_id))

    hard = dsn_for(runtime, org, sends[0], people[0].email)
    mid = make_message_id(keys.message_id, sends[4], "acme.example.com")
    complaint = feedback_report(
        to="fbl@acme.example.com",
        recipient=people[4].email,
        original=f"To: {people[4].email}\r\nMessage-ID: {mid}\r\n\r\n".encode(),
    )
    arrivals = [
        at_tag(sends[0], hard),
        at_tag(sends[0], hard),  # the same bytes again: the MTA retried
        at_tag(sends[0], dsn_for(runtime, org, sends[0], people[0].email)),  # another copy
        at_tag(sends[1], dsn_for(runtime, org, sends[1], people[1].email, SOFT)),
        at_tag(sends[1], dsn_for(runtime, org, sends[1], people[1].email)),  # now hard
        at_tag(sends[3], dsn_for(runtime, org, sends[3], people[3].email, SOFT)),
        # the contact's next campaign soft-bounces too: the limit of 2 in a row
        at_tag(later[1], dsn_for(runtime, org, later[1], people[3].email, SOFT)),
        Incoming(Source.SMTP, complaint, envelope_to=org.bounce_address),
        Incoming(
            Source.SMTP,
            (SAMPLES / "postfix_user_unknown.eml").read_bytes(),
            envelope_to=org.bounce_address,
        ),
        at_tag(later[0], (SAMPLES / "rfc3464_delayed.eml").read_bytes()),
        # no tag: the quoted Message-ID finds the send
        Incoming(
            Source.SMTP,
            dsn_for(runtime, org, later[0], people[2].email),
            envelope_to=org.bounce_address,
        ),
        # a service's events, one of them about a contact's latest delivery by address
        Incoming(
            Source.POSTMARK,
            b'{"events": 2}',
            events=[
                _event(ReportType.HARD, people[2].email),
                _event(ReportType.COMPLAINT, "nobody@example.org"),
            ],
        ),
    ]
    return Scene(
        org,
        [first, second],
        [*sends, *later],
        [p.id for p in people],
        [p.email for p in people],
        arrivals,
    )


def _event(kind: ReportType, email: str) -> Event:
    return Event(kind, email, f"{kind} by the service")


def outcome(runtime: Runtime, s: Scene, results: list[Ingested]) -> dict[str, object]:
    """What a user sees of a scene: each report by the arrival and event it records (a
    batch may give ids in another order), the sends, counters and contacts."""
    place: dict[int, tuple[int, int]] = {}
    for n, result in enumerate(results):
        for slot, report in enumerate(result.reports):
            place.setdefault(report.id, (n, slot))
    rows = sorted(reports_of(runtime, s.org), key=lambda row: place[row.id])

    def said(text: str | None) -> str:
        return s.said(text or "", place)

    return {
        "answers": [
            (result.repeat, [(place[r.id], r.type, r.matched_by) for r in result.reports])
            for result in results
        ],
        "reports": [
            (
                r.type,
                said(r.email),
                s.sends.index(r.send_id) if r.send_id else None,
                r.matched_by,
                said(r.reason),
            )
            for r in rows
        ],
        "sends": [
            (x.status, x.bounce_type, said(x.error), x.complained_at is not None)
            for x in (get_send(runtime, i) for i in s.sends)
        ],
        "campaigns": [
            (c.delivered, c.failed, c.bounced, c.complaints)
            for c in (get_campaign_row(runtime, i) for i in s.campaigns)
        ],
        "contacts": [
            (c.email_status, said(c.email_status_reason), c.marketing_opt_out)
            for c in (contact_row(runtime, i) for i in s.contacts)
        ],
    }


def test_a_batch_comes_to_what_its_reports_do_one_after_another(runtime):
    one_by_one, together = scene(runtime), scene(runtime)
    keys = one_by_one.org.keys(runtime)

    results = []
    for incoming in one_by_one.arrivals:
        with unit_of_work(runtime.sessions) as session:
            results.extend(ingest_all(session, keys, [(incoming, one_by_one.org.org_id)]))
    with unit_of_work(runtime.sessions) as session:
        batch = [(incoming, together.org.org_id) for incoming in together.arrivals]
        batched = ingest_all(session, keys, batch)

    expected = outcome(runtime, one_by_one, results)
    assert outcome(runtime, together, batched) == expected
    # and what that is: the same bytes once, the same event counted once, a soft bounce
    # hardened, two soft bounces in a row suppressing, a complaint, an unmatched report
    answers = expected["answers"]
    assert answers[1] == (True, answers[0][1]) and answers[2][1][0][1] == "ignored"
    assert [x[:2] for x in expected["sends"][:4]] == [
        ("BOUNCED", "hard"),
        ("BOUNCED", "hard"),
        ("DELIVERED", None),
        ("BOUNCED", "soft"),
    ]
    assert expected["campaigns"] == [(2, 3, 3, 1), (0, 2, 2, 0)]
    statuses = [c[0] for c in expected["contacts"]]
    assert statuses == ["BOUNCED", "BOUNCED", "BOUNCED", "BOUNCED", "COMPLAINED"]
    assert "2 campaigns in a row" in expected["contacts"][3][1]
    for campaign_id in together.campaigns:
        assert_counters_match_sends(runtime, campaign_id)


def test_an_event_counted_by_another_process_meanwhile_is_a_repeat(runtime, monkeypatch):
    """PostgreSQL: another receiver commits the same event between the batch's look-up of
    counted events and its INSERT; the unique index decides, and the batch records a repeat
    that changes nothing."""
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    (first,) = bounce(runtime, org, send_id, person.email).reports
    looked_up = repository.counted_ids
    calls = []

    def not_yet_committed(session, keys):  # type: ignore[no-untyped-def]
        calls.append(keys)
        return {} if len(calls) == 1 else looked_up(session, keys)

    monkeypatch.setattr(repository, "counted_ids", not_yet_committed)
    (again,) = bounce(runtime, org, send_id, person.email).reports

    assert len(calls) == 2  # the look-up, then again for the row the index refused
    assert again.type == "ignored" and f"A repeat of report {first.id}" in again.reason
    campaign = get_campaign_row(runtime, campaign_id)
    assert (campaign.delivered, campaign.failed, campaign.bounced) == (0, 1, 1)


def test_sends_that_changed_since_they_were_read_are_bounced_once(runtime):
    """record_bounces with what was read before another process bounced one of the sends:
    the batch's UPDATE misses it, so each send is written again one at a time, and
    the counters move once per send."""
    org = bounce_org(runtime)
    people = [contact(runtime, org), contact(runtime, org)]
    campaign_id, sends = delivered_campaign(runtime, org, people)
    with unit_of_work(runtime.sessions) as session:
        read = feedback.sends_facts(session, {(org.org_id, i) for i in sends})
    bounce(runtime, org, sends[0], people[0].email)  # meanwhile, elsewhere

    with unit_of_work(runtime.sessions) as session:
        at = read[org.org_id, sends[0]].delivered_at
        assert at is not None
        feedback.record_bounces(
            session, [feedback.Bounce(read[org.org_id, i], True, "550", at) for i in sends]
        )

    assert [get_send(runtime, i).status for i in sends] == ["BOUNCED", "BOUNCED"]
    campaign = get_campaign_row(runtime, campaign_id)
    assert (campaign.delivered, campaign.failed, campaign.bounced) == (0, 2, 2)
    assert_counters_match_sends(runtime, campaign_id)


@pytest.mark.parametrize("bad_at", [0, 1, 2])
def test_a_report_that_cannot_be_stored_fails_alone(runtime, bad_at):
    """The receiver's batch: one report whose org was deleted since its RCPT fails the
    batch's transaction; the others are written again and stored, and only it gets the
    error (451)."""
    org = bounce_org(runtime)
    people = [contact(runtime, org) for _ in range(3)]
    _, sends = delivered_campaign(runtime, org, people)
    deliveries = []
    for i, send_id in enumerate(sends):
        raw = dsn_for(runtime, org, send_id, people[i].email)
        gone = uuid.uuid4() if i == bad_at else org.org_id
        deliveries.append(_Delivery(gone, tagged(runtime, org, send_id), raw))

    results = BounceHandler(runtime)._write(deliveries)

    assert [isinstance(r, Exception) for r in results] == [i == bad_at for i in range(3)]
    stored = sorted(r.send_id for r in reports_of(runtime, org))
    assert stored == sorted(s for i, s in enumerate(sends) if i != bad_at)


def test_a_report_that_cannot_be_read_fails_alone(runtime, monkeypatch):
    """The batch reads its reports in its own thread: one that breaks the reader is
    answered with its own error (451), naming only the error's type, and the others of the
    batch are stored."""
    org = bounce_org(runtime)
    people = [contact(runtime, org) for _ in range(3)]
    _, sends = delivered_campaign(runtime, org, people)
    raws = [dsn_for(runtime, org, send_id, people[i].email) for i, send_id in enumerate(sends)]

    def breaks_on_the_second(raw: bytes):  # type: ignore[no-untyped-def]
        if raw == raws[1]:
            raise RuntimeError("a detail quoted from the message")
        return parse_report(raw)

    monkeypatch.setattr(receiver, "parse_report", breaks_on_the_second)
    deliveries = [
        _Delivery(org.org_id, tagged(runtime, org, send_id), raw)
        for send_id, raw in zip(sends, raws, strict=True)
    ]

    results = BounceHandler(runtime)._write(deliveries)

    assert [isinstance(r, Exception) for r in results] == [False, True, False]
    assert str(results[1]) == "RuntimeError"
    stored = sorted(r.send_id for r in reports_of(runtime, org))
    assert stored == sorted([sends[0], sends[2]])


def test_a_batch_of_reports_for_several_orgs_keeps_each_to_its_own(runtime):
    """One batch holds every org's reports (the receiver serves them all): a tag of one
    org's send received at another org's address names nothing there."""
    ours, theirs = bounce_org(runtime), bounce_org(runtime)
    mine, other = contact(runtime, ours), contact(runtime, theirs)
    _, (my_send,) = delivered_campaign(runtime, ours, [mine])
    _, (their_send,) = delivered_campaign(runtime, theirs, [other])
    keys = ours.keys(runtime)
    mine_raw = dsn_for(runtime, ours, my_send, mine.email)
    theirs_raw = dsn_for(runtime, theirs, their_send, other.email)
    batch = [
        (Incoming(Source.SMTP, mine_raw, envelope_to=tagged(runtime, ours, my_send)), None),
        (Incoming(Source.SMTP, theirs_raw, envelope_to=tagged(runtime, theirs, their_send)), None),
        # their send's tag, at our address: not ours to bounce
        (
            Incoming(
                Source.SMTP,
                theirs_raw,
                envelope_to=return_path(keys.tag, ours.bounce_address, their_send),
            ),
            None,
        ),
    ]

    with unit_of_work(runtime.sessions) as session:
        results = ingest_all(session, keys, batch)

    assert [r.reports[0].type for r in results] == ["hard", "hard", "unmatched"]
    assert [r.send_id for r in reports_of(runtime, ours)] == [my_send, None]
    assert [r.send_id for r in reports_of(runtime, theirs)] == [their_send]
    assert get_send(runtime, their_send).status == "BOUNCED"
    assert receive(runtime, ours, mine_raw, envelope_to=tagged(runtime, ours, my_send)).repeat


def test_stored_webhook_calls_go_together_and_one_failing_call_holds_up_no_other(runtime):
    """The worker ingests a batch of stored calls together; a call the ingest fails on is
    kept with its error, and the others of the batch are ingested all the same."""
    org = bounce_org(runtime)
    people = [contact(runtime, org) for _ in range(3)]
    campaign_id, sends = delivered_campaign(runtime, org, people)
    calls = [("postmark", json.dumps(payloads.postmark_bounce(p.email)).encode()) for p in people]
    calls[1] = ("ses", b"not an SNS message")  # (stored by a bug, say)
    with unit_of_work(runtime.sessions) as session:
        for source, body in calls:
            session.add(WebhookDelivery(org_id=org.org_id, source=source, body=body))

    assert ingest_stored(runtime) == 3

    assert [get_send(runtime, i).status for i in sends] == ["BOUNCED", "DELIVERED", "BOUNCED"]
    assert get_campaign_row(runtime, campaign_id).bounced == 2
    with unit_of_work(runtime.sessions, write=False) as session:
        (kept,) = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.org_id == org.org_id)
        )
        assert kept.source == "ses" and kept.failed_at is not None and kept.error
