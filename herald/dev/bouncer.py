"""Reports as real mail servers write them, for ``herald dev``'s demo: a Postfix-style
delivery status notification (RFC 3464) for a failed recipient, and a feedback report
(RFC 5965) as a mailbox provider sends when someone marks a message as spam. The local
mail catcher answers a few demo addresses with them, sent to the message's return path
through Herald's own bounce receiver, so a newcomer sees bounces arrive."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

REPORTING_HOST = "mx.demo-recipient.herald.example"


@dataclass(frozen=True)
class Failure:
    status: str  # e.g. 5.1.1
    reply: str  # the receiving server's answer, e.g. "550 5.1.1 <x>: User unknown"


# The demo's answers, by the local part of the recipient's address.
HARD = Failure("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
SOFT = Failure("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full: quota exceeded")


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def _original_headers(original: bytes) -> str:
    head = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace").replace("\r\n", "\n").strip()


def delivery_status_notification(
    *, return_path: str, recipient: str, failure: Failure, original: bytes
) -> bytes:
    """A DSN for ``recipient``, addressed to ``return_path``, quoting the original headers."""
    boundary = f"{secrets.token_hex(6).upper()}.{secrets.randbelow(10**10)}/{REPORTING_HOST}"
    reply = failure.reply.format(rcpt=recipient)
    text = f"""\
Return-Path: <>
Date: {_now()}
From: MAILER-DAEMON@{REPORTING_HOST} (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Message-Id: <{secrets.token_hex(8)}@{REPORTING_HOST}>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {REPORTING_HOST}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

                   The mail system

<{recipient}>: host {REPORTING_HOST}[192.0.2.25] said: {reply}
    (in reply to RCPT TO command)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; {REPORTING_HOST}
Arrival-Date: {_now()}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {failure.status}
Remote-MTA: dns; {REPORTING_HOST}
Diagnostic-Code: smtp; {reply}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original_headers(original)}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("utf-8")


def feedback_report(*, to: str, recipient: str, original: bytes) -> bytes:
    """An RFC 5965 abuse report about ``original``, as a provider's feedback loop sends it."""
    boundary = f"fbl_{secrets.token_hex(8)}"
    text = f"""\
From: Feedback Loop <fbl@{REPORTING_HOST}>
Date: {_now()}
Subject: Complaint about a message you sent
To: {to}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for a message received from your system.
A recipient marked it as spam.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: HeraldDemoFBL/1.0
Version: 1
Original-Rcpt-To: <{recipient}>
Arrival-Date: {_now()}
Reporting-MTA: dns; {REPORTING_HOST}

--{boundary}
Content-Type: text/rfc822-headers

{_original_headers(original)}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("utf-8")
