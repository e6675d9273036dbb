"""The test message of Settings → Email configuration: composed and sent by herald.mail like
every other message; the SMTP server's answer is reported (see herald.mail.testsend)."""

from __future__ import annotations

import uuid

from herald.errors import ValidationFailed
from herald.mail import compose, testsend
from herald.mail.smtp import Reply
from herald.mailconfig.account import MailAccount
from herald.settings import Settings

SUBJECT = "Herald test message"

_BODY = """\
This is a test message from Herald.

It was sent through {host}:{port} (security: {security}). If you are reading it,
your organisation's email configuration works.
"""


def build_test_message(account: MailAccount, to: str) -> bytes:
    smtp = account.smtp
    try:
        return compose.text_message(
            subject=SUBJECT,
            text=_BODY.format(host=smtp.host, port=smtp.port, security=smtp.security),
            from_name=account.from_name,
            from_email=account.from_email,
            to=to,
        )
    except compose.InvalidAddress as exc:
        raise ValidationFailed(f"Enter one valid email address: {exc}", field="to") from None


async def send_test_message(
    account: MailAccount, to: str, *, timeout: float | None = None
) -> Reply:
    """Send the test message to ``to``; the server's answer to it, or ``SmtpFailed``."""
    raw = build_test_message(account, to)
    sender = compose.smtp_address(account.from_email)
    return await testsend.deliver(account.smtp, sender, to, raw, timeout=timeout)


def take_test_allowance(settings: Settings, org_id: uuid.UUID) -> None:
    """429 ``rate_limited`` once the org has sent its test messages for this minute."""
    testsend.test_message_limit.take(org_id, settings.smtp_test_messages_per_minute)
