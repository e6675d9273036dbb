"""`herald inbound`'s receiver over real SMTP on loopback: only the orgs' bounce addresses,
10 MiB at most, and 250 only once the report is stored."""

from __future__ import annotations

import time

from sqlalchemy import update

from herald.bounces.receiver import MAX_MESSAGE_BYTES
from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from tests.bounces.factories import (
    bounce_org,
    contact,
    delivered_campaign,
    dsn_for,
    reports_of,
    smtp,
    tagged,
)
from tests.marketing.factories import get_send


def test_a_bounce_is_stored_before_the_250_and_bounces_its_send(runtime, inbound):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    to = tagged(runtime, org, send_id)

    with smtp(inbound) as client:
        client.mail("<>")
        assert client.rcpt(to)[0] == 250
        code, message = client.data(dsn_for(runtime, org, send_id, person.email))
        # nothing waited for: the 250 itself says the report is committed
        assert code == 250, message
        stored = reports_of(runtime, org)

    assert [(r.type, r.send_id, r.source) for r in stored] == [("hard", send_id, "smtp")]
    assert get_send(runtime, send_id).status == "BOUNCED"


def test_other_recipients_are_refused_so_it_never_relays(runtime, inbound):
    org = bounce_org(runtime)
    with smtp(inbound) as client:
        client.mail("spammer@example.org")
        for stranger in ("victim@gmail.com", "postmaster@bounces.herald.test", "b@other.example"):
            code, message = client.rcpt(stranger)
            assert code == 550, (stranger, message)
        assert client.rcpt(org.bounce_address)[0] == 250  # the bare address, without a tag
        assert client.rcpt(org.bounce_address.upper())[0] == 250  # case does not matter


def test_a_message_over_10_mib_is_refused_with_552_and_not_stored(runtime, inbound):
    org = bounce_org(runtime)
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (MAX_MESSAGE_BYTES // 1000 + 10)
    with smtp(inbound) as client:
        client.mail("<>")
        client.rcpt(org.bounce_address)
        code, _message = client.data(body)
    assert code == 552
    assert reports_of(runtime, org) == []


def test_a_bounce_address_set_after_the_start_is_accepted(runtime, inbound):
    org = bounce_org(runtime)
    with smtp(inbound) as client:
        client.mail("<>")
        assert client.rcpt(org.bounce_address)[0] == 250  # the receiver read the addresses
    later = f"late-{org.bounce_address}"
    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(EmailConfig).where(EmailConfig.org_id == org.org_id).values(bounce_address=later)
        )
    deadline = time.monotonic() + 5
    with smtp(inbound) as client:
        client.mail("<>")
        while (code := client.rcpt(later)[0]) != 250 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert code == 250


def test_several_senders_at_once_are_each_answered_after_their_commit(runtime, inbound):
    import concurrent.futures

    org = bounce_org(runtime)
    people = [contact(runtime, org) for _ in range(12)]
    _, sends = delivered_campaign(runtime, org, people)

    def bounce(i: int) -> int:
        with smtp(inbound) as client:
            client.mail("<>")
            client.rcpt(tagged(runtime, org, sends[i]))
            return client.data(dsn_for(runtime, org, sends[i], people[i].email))[0]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        assert list(pool.map(bounce, range(12))) == [250] * 12
    assert sorted(r.send_id for r in reports_of(runtime, org)) == sorted(sends)
