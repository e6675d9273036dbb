"""Mail anyone can send to `herald inbound`: whatever it holds, the receiver answers it (250
once stored, or 451 to try again, never an exception's words), keeps it as received, and
spends bounded work on it, off the event loop that every other session shares."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from herald.bounces import receiver
from herald.bounces.models import RawReport
from herald.bounces.receiver import MAX_RECIPIENTS, InboundThread
from herald.db import unit_of_work
from herald.dev.bouncer import Failure
from herald.mail.reports import parse_report
from tests.bounces.factories import (
    bounce_org,
    contact,
    delivered_campaign,
    dsn_for,
    reports_of,
    smtp,
    tagged,
)
from tests.bounces.hostile import CHARSET_WITH_NUL, nested, with_parts
from tests.marketing.factories import get_send

NUL_DIAGNOSTIC = Failure("5.1.1", "550 5.1.1 <{rcpt}>: user\x00unknown")


def send(inbound: InboundThread, rcpts: list[str], raw: bytes) -> tuple[int, bytes]:
    with smtp(inbound) as client:
        client.mail("<>")
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        return client.data(raw)


def raw_reports(runtime, org) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        found = session.scalar(
            select(func.count()).select_from(RawReport).where(RawReport.org_id == org.org_id)
        )
        return int(found or 0)


def test_a_charset_whose_name_holds_a_nul_is_stored_and_answered_250(runtime, inbound):
    org = bounce_org(runtime)

    code, message = send(inbound, [org.bounce_address], CHARSET_WITH_NUL)

    assert code == 250, message
    (report,) = reports_of(runtime, org)
    assert report.type == "ignored"


def test_a_nul_in_a_diagnostic_is_stored_without_it_and_the_send_bounces(runtime, inbound):
    """PostgreSQL refuses a NUL in text: the report would be answered 451 for ever."""
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    raw = dsn_for(runtime, org, send_id, person.email, NUL_DIAGNOSTIC)
    assert b"user\x00unknown" in raw

    code, message = send(inbound, [tagged(runtime, org, send_id)], raw)

    assert code == 250, message
    (report,) = reports_of(runtime, org)
    assert (report.type, report.send_id) == ("hard", send_id)
    assert "userunknown" in report.reason and "\x00" not in report.reason
    sent = get_send(runtime, send_id)
    assert sent.status == "BOUNCED" and "\x00" not in (sent.error or "")


def test_mail_is_parsed_off_the_event_loop(runtime, inbound, monkeypatch):
    parsed_on: list[threading.Thread] = []

    def parse(raw: bytes):
        parsed_on.append(threading.current_thread())
        return parse_report(raw)

    monkeypatch.setattr(receiver, "parse_report", parse)
    org = bounce_org(runtime)

    code, _ = send(inbound, [org.bounce_address], b"Subject: small\r\n\r\nhello\r\n")

    assert code == 250
    assert [t.name for t in parsed_on] != ["herald-inbound"]  # the receiver's loop thread
    assert len(parsed_on) == 1


def test_an_unforeseen_error_is_a_451_that_tells_nothing(runtime, inbound, monkeypatch):
    def broken(raw: bytes):
        raise RuntimeError("internal detail /srv/herald secret")

    monkeypatch.setattr(receiver, "parse_report", broken)
    org = bounce_org(runtime)

    code, message = send(inbound, [org.bounce_address], b"Subject: x\r\n\r\nhello\r\n")

    assert code == 451
    assert b"internal detail" not in message and b"RuntimeError" not in message
    with smtp(inbound) as client:  # the receiver still serves
        assert client.noop()[0] == 250


def test_past_100_recipients_a_message_is_refused_more_and_stored_once(runtime, inbound):
    org = bounce_org(runtime)
    people = [contact(runtime, org), contact(runtime, org)]
    _, (first, second) = delivered_campaign(runtime, org, people)
    raw = dsn_for(runtime, org, first, people[0].email)

    with smtp(inbound) as client:
        client.mail("<>")
        for rcpt in (tagged(runtime, org, first), tagged(runtime, org, second)):
            assert client.rcpt(rcpt)[0] == 250
        for _ in range(MAX_RECIPIENTS - 2):
            assert client.rcpt(org.bounce_address)[0] == 250
        code, message = client.rcpt(org.bounce_address)
        assert code == 452 and message.startswith(b"4.5.3"), message
        assert client.data(raw)[0] == 250

    assert raw_reports(runtime, org) == 1
    # each return path's tag named its send: both bounced, from the one stored message
    assert [get_send(runtime, s).status for s in (first, second)] == ["BOUNCED", "BOUNCED"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (nested(900), "Too many nested MIME parts to be a report."),
        (with_parts(20_000), "Too many MIME parts to be a report."),
    ],
    ids=["900 nested parts", "20,000 parts"],
)
def test_a_message_of_too_many_parts_is_stored_ignored_unparsed(runtime, inbound, raw, reason):
    org = bounce_org(runtime)

    code, message = send(inbound, [org.bounce_address], raw)

    assert code == 250, message
    (report,) = reports_of(runtime, org)
    assert (report.type, report.reason) == ("ignored", reason)
