"""The bounce mailbox against a real IMAP server (a private Dovecot, TLS with a test CA
trusted through SSL_CERT_FILE): recognised reports are ingested and moved to
Herald/Processed; a person's mail stays where it was, unread; one worker at a time."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from imapclient import IMAPClient

from herald.bounces.jobs import BounceJobs
from herald.db import unit_of_work
from herald.mailconfig import polls
from herald.runtime import Runtime
from tests.bounces import dovecot
from tests.bounces.arrange import (
    COMPLAINT,
    HARD,
    UNTOUCHED,
    Delivered,
    Org,
    delivered_send,
    org_with_settings,
    outcome,
    reports,
)
from tests.bounces.certs import Issued, make_ca, trust
from tests.conftest import make_settings

USER, PASSWORD = "bounces@acme.example.com", "mailbox-secret-1"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def imap_server(ca: Issued) -> Iterator[dovecot.Dovecot]:
    if not dovecot.available():
        print("SKIPPED: Dovecot is not installed (apt-get install dovecot-imapd)")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    server = dovecot.start(ca, {USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture
def ca_file(ca: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return trust(ca, tmp_path, monkeypatch)


@pytest.fixture
def mailbox(imap_server: dovecot.Dovecot, ca_file: Path) -> Iterator[IMAPClient]:
    """The test's own look into the mailbox (as its owner would), emptied for each test."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with IMAPClient("127.0.0.1", imap_server.imaps_port, ssl_context=context) as client:
        client.login(USER, PASSWORD)
        for folder in ("INBOX", "Herald/Processed"):
            if client.folder_exists(folder):
                client.select_folder(folder)
                client.delete_messages(client.search())
                client.expunge()
        yield client


def mailbox_fields(
    server: dovecot.Dovecot, security: str = "tls", **overrides: Any
) -> dict[str, Any]:
    port = server.imaps_port if security == "tls" else server.imap_port
    return {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "security": security,
        **overrides,
    }


def dsn(send: Delivered, message_id: str) -> bytes:
    """An RFC 3464 delivery status notification for the send: 5.1.1, user unknown."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: bounces@acme.example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n--B1\r\nContent-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "\r\n--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {send.email}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{send.email}>: Recipient address rejected: "
        "User unknown\r\n"
        "\r\n--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nFrom: news@acme.example.com\r\nTo: {send.email}\r\n"
        "Subject: Hello\r\n\r\n--B1--\r\n"
    ).encode()


def arf(send: Delivered, message_id: str) -> bytes:
    """An RFC 5965 abuse report for the send."""
    return (
        "From: feedback@fbl.example.net\r\nTo: bounces@acme.example.com\r\n"
        "Subject: FW: Hello\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B2"\r\n'
        "\r\n--B2\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "\r\n--B2\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {send.email}\r\n"
        "\r\n--B2\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Message-ID: {message_id}\r\nFrom: news@acme.example.com\r\nTo: {send.email}\r\n"
        "Subject: Hello\r\n\r\nHi\r\n--B2--\r\n"
    ).encode()


def personal(subject: str = "Lunch on Friday?") -> bytes:
    message = EmailMessage()
    message["From"] = "Ada <ada@partner.example>"
    message["To"] = USER
    message["Subject"] = subject
    message.set_content("Are you free on Friday? Ada")
    return bytes(message)


def poll(runtime: Runtime) -> bool:
    """What a worker does when the mailbox is due (the workers' own step)."""
    return BounceJobs(runtime)._poll_once()


def make_due(runtime: Runtime, org: Org) -> None:
    from sqlalchemy import update

    from herald.db import utcnow
    from herald.mailconfig.models import BounceMailboxPoll

    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(BounceMailboxPoll)
            .where(BounceMailboxPoll.org_id == org.id)
            .values(next_poll_at=utcnow())
        )


def folder(client: IMAPClient, name: str) -> dict[int, dict[bytes, Any]]:
    client.select_folder(name, readonly=True)
    uids = client.search()
    return client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}


def subjects(found: dict[int, dict[bytes, Any]]) -> set[str]:
    out = set()
    for data in found.values():
        raw = data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
        out.add(raw.removeprefix("Subject: "))
    return out


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
