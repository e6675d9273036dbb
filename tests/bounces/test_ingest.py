"""A report's way in (herald.bounces.ingest): recorded, matched to its send (tag, then
Message-ID, then address), counted once, and its effects on the send, the campaign's
counters and the contact — on a real database."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from herald.bounces.models import ReportType
from herald.db import unit_of_work
from herald.dev.bouncer import feedback_report
from herald.mail.sendref import make_message_id
from herald.marketing import queue
from tests.bounces.factories import (
    SOFT,
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
from tests.marketing.factories import get_campaign_row, get_send, insert_campaign, insert_sends

SAMPLES = Path(__file__).parent / "samples"


def test_a_hard_bounce_to_the_tag_bounces_the_send_moves_counters_and_suppresses(runtime):
    org = bounce_org(runtime)
    people = [contact(runtime, org), contact(runtime, org)]
    campaign_id, sends = delivered_campaign(runtime, org, people)
    raw = dsn_for(runtime, org, sends[0], people[0].email)

    ingested = receive(runtime, org, raw, envelope_to=tagged(runtime, org, sends[0]))

    (report,) = ingested.reports
    assert (report.type, report.send_id, report.matched_by) == ("hard", sends[0], "tag")
    assert report.campaign_id == campaign_id and report.email == people[0].email
    assert "User unknown" in report.reason and report.status_code == "5.1.1"
    send = get_send(runtime, sends[0])
    assert (send.status, send.bounce_type) == ("BOUNCED", "hard")
    assert send.bounced_at is not None and "User unknown" in (send.error or "")
    campaign = get_campaign_row(runtime, campaign_id)
    # counters moved at once, also after SENT: delivered down, failed and bounced up
    assert (campaign.status, campaign.delivered, campaign.failed, campaign.bounced) == (
        "SENT",
        1,
        1,
        1,
    )
    assert_counters_match_sends(runtime, campaign_id)
    bounced = contact_row(runtime, people[0].id)
    assert bounced.email_status == "BOUNCED" and "User unknown" in bounced.email_status_reason
    assert contact_row(runtime, people[1].id).email_status == "OK"


def test_a_tag_failing_its_hmac_is_unmatched_and_changes_nothing_even_if_the_address_matches(
    runtime,
):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    good = tagged(runtime, org, send_id)
    local, _, domain = good.partition("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    raw = dsn_for(runtime, org, send_id, person.email)

    (report,) = receive(runtime, org, raw, envelope_to=forged).reports

    assert report.type == "unmatched" and report.send_id is None
    assert "tag" in report.reason
    assert get_send(runtime, send_id).status == "DELIVERED"
    assert get_campaign_row(runtime, campaign_id).bounced == 0
    assert contact_row(runtime, person.id).email_status == "OK"


def test_without_a_tag_the_quoted_message_id_finds_the_send(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])

    (report,) = receive(runtime, org, dsn_for(runtime, org, send_id, person.email)).reports

    assert (report.type, report.send_id, report.matched_by) == ("hard", send_id, "message_id")


def test_a_message_id_failing_its_hmac_does_not_name_a_send(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org, "x@example.net")
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    forged = make_message_id(b"not the key", send_id, "acme.example.com")
    raw = dsn_for(runtime, org, send_id, "someone-else@example.net", message_id=forged)

    (report,) = receive(runtime, org, raw).reports

    assert report.type == "unmatched" and report.send_id is None


def test_else_the_address_finds_the_latest_delivered_send_to_it(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (older,) = delivered_campaign(runtime, org, [person])
    _, (latest,) = delivered_campaign(runtime, org, [person])
    raw = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    raw = raw.replace(b"nobody@recipient.example", person.email.upper().encode())

    (report,) = receive(runtime, org, raw).reports

    assert (report.send_id, report.matched_by) == (latest, "address")
    assert get_send(runtime, older).status == "DELIVERED"


def by_address(person_email: str) -> bytes:
    """A bounce naming only the failed address (no tag, no Message-ID of Herald's)."""
    raw = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    return raw.replace(b"nobody@recipient.example", person_email.encode())


def test_the_address_finds_a_send_to_a_contacts_former_address(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org, f"old-{uuid.uuid4().hex[:8]}@example.net")
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    with unit_of_work(runtime.sessions) as session:
        row = session.get(type(person), person.id)
        row.email = row.email_key = f"new-{uuid.uuid4().hex[:8]}@example.net"

    (report,) = receive(runtime, org, by_address(person.email)).reports

    assert (report.type, report.send_id, report.matched_by) == ("hard", send_id, "address")
    assert get_send(runtime, send_id).status == "BOUNCED"
    assert contact_row(runtime, person.id).email_status == "OK"  # the new address is fine


def test_the_address_finds_a_deleted_contacts_send(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    with unit_of_work(runtime.sessions) as session:
        session.delete(session.get(type(person), person.id))

    (report,) = receive(runtime, org, by_address(person.email)).reports

    assert (report.type, report.send_id) == ("hard", send_id)
    assert get_send(runtime, send_id).status == "BOUNCED"
    assert get_campaign_row(runtime, campaign_id).bounced == 1


def test_a_bounce_about_nobody_known_is_recorded_unmatched(runtime):
    org = bounce_org(runtime)
    raw = (SAMPLES / "postfix_user_unknown.eml").read_bytes()

    (report,) = receive(runtime, org, raw).reports

    assert (report.type, report.email, report.send_id) == (
        "unmatched",
        "nobody@recipient.example",
        None,
    )
    assert [r.id for r in reports_of(runtime, org)] == [report.id]


def test_the_same_report_twice_counts_once(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    raw = dsn_for(runtime, org, send_id, person.email)
    to = tagged(runtime, org, send_id)

    first = receive(runtime, org, raw, envelope_to=to)
    again = receive(runtime, org, raw, envelope_to=to)  # the same bytes: the MTA retried
    # the same event in other bytes (another copy of the DSN, re-sent later)
    copy = receive(runtime, org, dsn_for(runtime, org, send_id, person.email), envelope_to=to)

    assert again.repeat and [r.id for r in again.reports] == [r.id for r in first.reports]
    assert not copy.repeat
    (repeat,) = copy.reports
    assert repeat.type == "ignored" and f"report {first.reports[0].id}" in repeat.reason
    assert len(reports_of(runtime, org)) == 2
    campaign = get_campaign_row(runtime, campaign_id)
    assert (campaign.delivered, campaign.failed, campaign.bounced) == (0, 1, 1)


def test_what_is_ignored_stays_ignored_even_when_it_matches(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    raw = (SAMPLES / "rfc3464_delayed.eml").read_bytes()

    (report,) = receive(runtime, org, raw, envelope_to=tagged(runtime, org, send_id)).reports

    assert (report.type, report.send_id) == ("ignored", send_id)
    assert "delay" in report.reason.lower()
    assert get_send(runtime, send_id).status == "DELIVERED"
    assert get_campaign_row(runtime, campaign_id).failed == 0


def test_soft_bounces_on_consecutive_campaigns_suppress_at_the_limit(runtime):
    org = bounce_org(runtime, soft_bounce_limit=3)
    person = contact(runtime, org)
    for _ in range(2):
        _, (send_id,) = delivered_campaign(runtime, org, [person])
        receive(runtime, org, dsn_for(runtime, org, send_id, person.email, SOFT))
        assert get_send(runtime, send_id).bounce_type == "soft"
        assert contact_row(runtime, person.id).email_status == "OK"

    _, (third,) = delivered_campaign(runtime, org, [person])
    receive(runtime, org, dsn_for(runtime, org, third, person.email, SOFT))

    suppressed = contact_row(runtime, person.id)
    assert suppressed.email_status == "BOUNCED"
    assert "3 campaigns in a row" in suppressed.email_status_reason


def test_a_delivery_that_did_not_bounce_starts_the_count_again(runtime):
    org = bounce_org(runtime, soft_bounce_limit=2)
    person = contact(runtime, org)
    _, (first,) = delivered_campaign(runtime, org, [person])
    delivered_campaign(runtime, org, [person])  # delivered, never bounced
    _, (third,) = delivered_campaign(runtime, org, [person])

    receive(runtime, org, dsn_for(runtime, org, first, person.email, SOFT))
    receive(runtime, org, dsn_for(runtime, org, third, person.email, SOFT))

    assert contact_row(runtime, person.id).email_status == "OK"


def test_soft_bounces_arriving_out_of_order_still_suppress_at_the_limit(runtime):
    org = bounce_org(runtime, soft_bounce_limit=2)
    person = contact(runtime, org)
    _, (first,) = delivered_campaign(runtime, org, [person])
    _, (second,) = delivered_campaign(runtime, org, [person])

    # the later campaign's bounce comes first (the earlier one's server retried for days)
    receive(runtime, org, dsn_for(runtime, org, second, person.email, SOFT))
    assert contact_row(runtime, person.id).email_status == "OK"
    receive(runtime, org, dsn_for(runtime, org, first, person.email, SOFT))

    suppressed = contact_row(runtime, person.id)
    assert suppressed.email_status == "BOUNCED"
    assert "2 campaigns in a row" in suppressed.email_status_reason


def test_a_complaint_marks_the_send_counts_it_and_opts_the_contact_out(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    mid = make_message_id(org.keys(runtime).message_id, send_id, "acme.example.com")
    original = f"To: {person.email}\r\nMessage-ID: {mid}\r\n\r\n".encode()
    raw = feedback_report(to="fbl@acme.example.com", recipient=person.email, original=original)

    (report,) = receive(runtime, org, raw).reports

    assert (report.type, report.send_id, report.matched_by) == ("complaint", send_id, "message_id")
    send = get_send(runtime, send_id)
    assert send.status == "DELIVERED" and send.complained_at is not None
    campaign = get_campaign_row(runtime, campaign_id)
    assert (campaign.complaints, campaign.delivered, campaign.failed) == (1, 1, 0)
    complained = contact_row(runtime, person.id)
    assert complained.email_status == "COMPLAINED" and complained.marketing_opt_out


def test_a_bounce_before_the_delivery_is_recorded_bounces_the_send_when_it_is(runtime):
    """The relay bounced at once, before the worker recorded the delivery: the send stays in
    flight until then, and is counted BOUNCED (not delivered) when it is."""
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id = insert_campaign(runtime, org.org_id, "SENDING", recipients=1)
    (send_id,) = insert_sends(
        runtime,
        org.org_id,
        campaign_id,
        [{"email": person.email, "contact_id": person.id, "status": "SENDING", "lease_owner": "w"}],
    )

    receive(runtime, org, dsn_for(runtime, org, send_id, person.email))
    assert get_send(runtime, send_id).status == "SENDING"  # not ours to finish
    assert contact_row(runtime, person.id).email_status == "BOUNCED"  # the address is dead now
    with unit_of_work(runtime.sessions) as session:
        queue.record_outcomes(
            session, "w", campaign_id, queue.Outcomes(delivered=[send_id]), 60, 3600
        )

    send = get_send(runtime, send_id)
    assert (send.status, send.bounce_type) == ("BOUNCED", "hard")
    campaign = get_campaign_row(runtime, campaign_id)
    assert (campaign.status, campaign.delivered, campaign.failed, campaign.bounced) == (
        "SENT",
        0,
        1,
        1,
    )
    assert_counters_match_sends(runtime, campaign_id)


def test_a_bounce_of_an_old_address_leaves_the_contacts_new_one_alone(runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org, "old@example.net")
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    with unit_of_work(runtime.sessions) as session:
        row = session.get(type(person), person.id)
        row.email, row.email_key = "new@example.net", "new@example.net"

    receive(runtime, org, dsn_for(runtime, org, send_id, "old@example.net"))

    assert get_send(runtime, send_id).status == "BOUNCED"
    assert contact_row(runtime, person.id).email_status == "OK"


def test_a_report_names_each_failed_recipient(runtime):
    org = bounce_org(runtime)
    raw = (SAMPLES / "rfc3464_multi.eml").read_bytes()

    reports = receive(runtime, org, raw).reports

    assert Counter(r.type for r in reports) == {ReportType.UNMATCHED.value: 2}
    assert {r.email for r in reports} == {"arathib@vnet.ibm.com", "wsnell@sdcc13.ucsd.edu"}
    assert len({r.raw_id for r in reports}) == 1
