"""The bounce mailbox's side of the tests: its account on the private Dovecot, the mail
that lands in it (reports and a person's mail), and looks into its folders."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from imapclient import IMAPClient

from herald.bounces.jobs import BounceJobs
from herald.db import unit_of_work
from herald.runtime import Runtime
from tests.bounces import dovecot
from tests.bounces.arrange import Delivered, Org

USER, PASSWORD = "bounces@acme.example.com", "mailbox-secret-1"


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
