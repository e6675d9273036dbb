"""The bounce mailbox against a real IMAP server (a private Dovecot, TLS with a test CA
trusted through SSL_CERT_FILE): recognised reports are ingested and moved to
Herald/Processed; a person's mail stays where it was, unread; one worker at a time."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from imapclient import IMAPClient
from sqlalchemy import update

from herald.bounces import mailbox as bounce_mailbox
from herald.bounces.jobs import BounceJobs
from herald.db import unit_of_work, utcnow
from herald.mail.imap import ImapFailed, Mailbox
from herald.mail.reports import parse_report
from herald.mailconfig import inbound, polls
from herald.mailconfig.models import BounceMailboxPoll
from herald.runtime import Runtime
from tests.bounces.arrange import (
    COMPLAINT,
    HARD,
    UNTOUCHED,
    Org,
    delivered_send,
    org_with_settings,
    outcome,
    reports,
)
from tests.bounces.imap_mail import (
    arf,
    dsn,
    folder,
    mailbox_fields,
    make_due,
    personal,
    poll,
    subjects,
)
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _no_other_mailbox_due(runtime: Runtime) -> None:
    """Mailboxes other tests saved on this database (tests/mailconfig's, on 127.0.0.1) are
    not due while a test here runs: a poll takes one due mailbox, and it must be the test's."""
    with unit_of_work(runtime.sessions) as session:
        polls.add_missing(session)
        later = utcnow() + dt.timedelta(days=1)
        session.execute(update(BounceMailboxPoll).values(next_poll_at=later))


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_reports_are_ingested_and_moved_and_other_mail_stays_unread(
    client: httpx.Client, runtime: Runtime, imap_server, mailbox: IMAPClient, security: str
) -> None:
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server, security))
    bounced, complained, untouched = (delivered_send(runtime, org.id) for _ in range(3))
    mailbox.append("INBOX", dsn(bounced, bounced.message_id(runtime)))
    mailbox.append("INBOX", arf(complained, complained.message_id(runtime)))
    mailbox.append("INBOX", personal())
    mailbox.append("INBOX", personal("Out of office: back Monday"))
    mailbox.append("INBOX", personal("Already read"), flags=[b"\\Seen"])

    assert poll(runtime) is True

    assert outcome(runtime, bounced).__dict__ == HARD
    assert outcome(runtime, complained).__dict__ == COMPLAINT
    assert outcome(runtime, untouched).__dict__ == UNTOUCHED
    assert {(r.email, r.type, r.source) for r in reports(runtime, org.id)} == {
        (bounced.email, "hard", "imap"),
        (complained.email, "complaint", "imap"),
    }
    inbox = folder(mailbox, "INBOX")
    assert subjects(inbox) == {"Lunch on Friday?", "Out of office: back Monday", "Already read"}
    seen = {subject for subject in subjects(inbox) if subject == "Already read"}
    unread = [d for d in inbox.values() if b"\\Seen" not in d[b"FLAGS"]]
    assert len(unread) == 2 and seen == {"Already read"}  # nobody's mail was marked read
    assert subjects(folder(mailbox, "Herald/Processed")) == {
        "Undelivered Mail Returned to Sender",
        "FW: Hello",
    }
    shown = org.settings(client)["bounceMailbox"]
    assert shown["polledAt"] is not None
    assert shown["pollError"] is None
    assert shown["processedLast"] == 2
    assert shown["passwordSet"] is True and "password" not in shown


def test_later_polls_read_only_new_mail(
    client: httpx.Client, runtime: Runtime, imap_server, mailbox: IMAPClient
) -> None:
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))
    first, second = delivered_send(runtime, org.id), delivered_send(runtime, org.id)
    mailbox.append("INBOX", personal())
    mailbox.append("INBOX", dsn(first, first.message_id(runtime)))
    assert poll(runtime) is True
    assert poll(runtime) is False  # not due again before HERALD_BOUNCE_POLL_SECONDS

    mailbox.append("INBOX", dsn(second, second.message_id(runtime)))
    make_due(runtime, org)
    assert poll(runtime) is True

    assert outcome(runtime, second).__dict__ == HARD
    assert len(reports(runtime, org.id)) == 2
    assert org.settings(client)["bounceMailbox"]["processedLast"] == 1
    assert subjects(folder(mailbox, "INBOX")) == {"Lunch on Friday?"}


def test_a_failed_login_is_shown_and_moves_nothing(
    client: httpx.Client, runtime: Runtime, imap_server, mailbox: IMAPClient
) -> None:
    fields = mailbox_fields(imap_server, password="not-the-password")
    org = org_with_settings(client, runtime, bounceMailbox=fields)
    send = delivered_send(runtime, org.id)
    mailbox.append("INBOX", dsn(send, send.message_id(runtime)))

    poll(runtime)

    shown = org.settings(client)["bounceMailbox"]
    assert "log in" in shown["pollError"]
    assert outcome(runtime, send).__dict__ == UNTOUCHED
    assert len(folder(mailbox, "INBOX")) == 1


def test_an_untrusted_certificate_is_refused(
    client: httpx.Client, runtime: Runtime, imap_server, monkeypatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))

    poll(runtime)

    assert "certificate" in org.settings(client)["bounceMailbox"]["pollError"]


def test_one_worker_at_a_time(client: httpx.Client, runtime: Runtime, imap_server) -> None:
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))
    with unit_of_work(runtime.sessions) as session:
        polls.add_missing(session)
    claims = []
    for owner in ("worker-a", "worker-b"):
        with unit_of_work(runtime.sessions) as session:
            while (claim := polls.claim_due(session, owner, 60)) is not None:
                claims.append(claim)
    mine = [claim.owner for claim in claims if claim.org_id == org.id]
    assert mine == ["worker-a"]


def test_mailbox_host_follows_the_egress_rule(client, runtime, imap_server, start_server) -> None:
    """Saved on a server that allows no private network: loopback is refused, named field."""
    strict = start_server(smtp_allowed_networks="")
    org = org_with_settings(client, runtime)
    body = {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "defaultFromEmail": "news@acme.example.com",
        "bounceMailbox": mailbox_fields(imap_server),
    }
    with httpx.Client(base_url=strict.url, timeout=30) as other:
        r = other.put("/api/settings/email", headers=org.headers, json=body)

    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "smtp_host_not_allowed"
    assert error["details"][0]["field"] == "bounceMailbox.host"


def test_connect_time_egress_check(client, runtime, imap_server, mailbox) -> None:
    """Saved while allowed; the operator then narrows HERALD_SMTP_ALLOWED_NETWORKS."""
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))
    strict = runtime.__class__.from_settings(
        make_settings(runtime.settings.database_url, smtp_allowed_networks="")
    )
    try:
        BounceJobs(strict)._poll_once()
    finally:
        strict.engine.dispose()

    assert "public address" in org.settings(client)["bounceMailbox"]["pollError"]


def test_a_message_the_poll_fails_on_is_left_said_and_passed_over(
    client, runtime, imap_server, mailbox, monkeypatch
) -> None:
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))
    odd, good = delivered_send(runtime, org.id), delivered_send(runtime, org.id)
    mailbox.append("INBOX", dsn(odd, odd.message_id(runtime)).replace(b"Hello", b"Odd"))
    mailbox.append("INBOX", dsn(good, good.message_id(runtime)))
    read: list[bytes] = []

    def parse(raw: bytes):  # a bug that only this one message meets
        read.append(raw)
        if b"Subject: Odd" in raw:
            raise RuntimeError("a bug")
        return parse_report(raw)

    monkeypatch.setattr(bounce_mailbox, "parse_report", parse)

    assert poll(runtime) is True

    assert outcome(runtime, good).__dict__ == HARD
    assert outcome(runtime, odd).__dict__ == UNTOUCHED
    assert len(folder(mailbox, "INBOX")) == 1  # the odd one stays where it was
    error = org.settings(client)["bounceMailbox"]["pollError"]
    assert "1 message(s) could not be read and were left in the folder" in error
    assert "RuntimeError" in error
    make_due(runtime, org)
    assert poll(runtime) is True
    assert len(read) == 2, "the odd message is not read again and again"


def test_each_message_records_the_poll_s_progress_and_renews_its_lease(
    client, runtime, imap_server, mailbox, monkeypatch
) -> None:
    """A poll of many (or large) messages never outlives its lease unnoticed: its progress
    and lease are written after each message."""
    org = org_with_settings(client, runtime, bounceMailbox=mailbox_fields(imap_server))
    for send in (delivered_send(runtime, org.id) for _ in range(3)):
        mailbox.append("INBOX", dsn(send, send.message_id(runtime)))
    mailbox.select_folder("INBOX", readonly=True)
    uids = sorted(mailbox.search())
    seen: list[tuple[int, object]] = []

    def parse(raw: bytes):
        seen.append(poll_row(runtime, org))
        return parse_report(raw)

    monkeypatch.setattr(bounce_mailbox, "parse_report", parse)

    poll(runtime)

    assert [last_uid for last_uid, _ in seen] == [0, *uids[:-1]]
    leases = [lease for _, lease in seen]
    assert leases == sorted(leases) and leases[-1] > leases[0]


def poll_row(runtime: Runtime, org: Org) -> tuple[int, object]:
    with unit_of_work(runtime.sessions, write=False) as session:
        row = inbound.poll_status(session, org.id)
        assert row is not None
        return row.last_uid, row.lease_expires_at


def test_saving_the_same_mailbox_again_keeps_where_its_polls_stopped(
    client, runtime, imap_server, mailbox
) -> None:
    fields = mailbox_fields(imap_server)
    org = org_with_settings(client, runtime, bounceMailbox=fields)
    mailbox.append("INBOX", personal())
    poll(runtime)
    last = org.settings(client)["bounceMailbox"]
    assert last["polledAt"] is not None
    read_up_to = poll_row(runtime, org)[0]

    # the same mailbox saved again, then with a new password: its last poll still shows,
    # and the next poll goes on from where it stopped
    org.save(client, bounceMailbox={k: v for k, v in fields.items() if k != "password"})
    org.save(client, bounceMailbox=fields)
    assert org.settings(client)["bounceMailbox"]["polledAt"] == last["polledAt"]
    assert poll_row(runtime, org)[0] == read_up_to > 0

    # another folder is another mailbox: read from its start
    org.save(client, bounceMailbox={**fields, "folder": "Bounces"})
    assert org.settings(client)["bounceMailbox"]["polledAt"] is None


def test_a_server_that_gives_no_uidvalidity_is_a_poll_error() -> None:
    class NoUidValidity:
        def select_folder(self, folder: str) -> dict[bytes, object]:
            return {b"EXISTS": 3}

    with pytest.raises(ImapFailed, match="no UIDVALIDITY"):
        Mailbox(NoUidValidity(), "INBOX")  # type: ignore[arg-type]
