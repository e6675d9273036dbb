"""The test message of Settings → Email configuration: send it, report the SMTP server's answer.

Every way the exchange can fail becomes one ``SmtpFailed`` (502) naming what went wrong in
words an admin can act on, with the server's code and text when it gave one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from herald.errors import HeraldError
from herald.log import get_logger
from herald.mailconfig.account import MailAccount
from herald.marketing.transport import (
    ConnectionLost,
    Reply,
    SmtpConnection,
    SmtpError,
    SmtpSettings,
)

log = get_logger(__name__)

SUBJECT = "Herald test message"
TIMEOUT_SECONDS = 20.0
MAX_REPLY_CHARS = 1000

_BODY = """\
This is a test message from Herald.

It was sent through {host}:{port} (security: {security}). If you are reading it,
your organisation's email configuration works.
"""


class SmtpFailed(HeraldError):
    """The SMTP server could not be reached or refused: a bad gateway from the client's view."""

    status = 502
    code = "smtp_failed"

    def __init__(self, message: str, *, smtp_code: int | None, smtp_message: str) -> None:
        details = {"smtpCode": smtp_code, "smtpMessage": smtp_message[:MAX_REPLY_CHARS]}
        super().__init__(message, details=details)


def build_test_message(account: MailAccount, to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = Address(display_name=account.from_name, addr_spec=account.from_email)
    message["To"] = to
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=account.from_email.rpartition("@")[2])
    smtp = account.smtp
    message.set_content(_BODY.format(host=smtp.host, port=smtp.port, security=smtp.security))
    return message


async def send_test_message(
    account: MailAccount, to: str, *, timeout: float = TIMEOUT_SECONDS
) -> Reply:
    """Send the test message to ``to``; the server's answer to it, or ``SmtpFailed``."""
    raw = build_test_message(account, to).as_bytes(policy=policy.SMTP)
    smtp = dataclasses.replace(account.smtp, timeout=timeout)
    try:
        conn = await SmtpConnection.open(smtp)
        try:
            reply = await conn.send(account.from_email, to, raw)
        finally:
            await conn.close()
    except (SmtpError, ConnectionLost, OSError, TimeoutError, EOFError) as exc:
        failure = describe_failure(exc, smtp, account.from_email, to)
        log.warning(
            "mailconfig.test_failed",
            host=smtp.host,
            port=smtp.port,
            smtp_code=failure.details["smtpCode"],
            error=type(exc).__name__,
        )
        raise failure from exc
    log.info("mailconfig.test_sent", host=smtp.host, port=smtp.port, smtp_code=reply.code)
    return reply


_REFUSALS = {
    "AUTH": "refused the username or password",
    "greeting": "refused the connection",
    "MAIL FROM": "refused the sender",
    "RCPT TO": "refused the recipient",
    "DATA": "refused the message",
    "end of DATA": "refused the message",
}


def describe_failure(exc: BaseException, smtp: SmtpSettings, sender: str, to: str) -> SmtpFailed:
    where = f"{smtp.host}:{smtp.port}"
    if isinstance(exc, SmtpError):
        code = exc.reply.code or None
        what = _REFUSALS.get(exc.during, "answered with an error")
        what = {"MAIL FROM": f"{what} {sender}", "RCPT TO": f"{what} {to}"}.get(exc.during, what)
        if exc.during == "STARTTLS" and code is None:
            text = f"The SMTP server {where} does not offer STARTTLS: {exc.reply.text}."
        else:
            text = f"The SMTP server {where} {what} ({exc.reply})."
        return SmtpFailed(text, smtp_code=code, smtp_message=exc.reply.text)
    cause = exc.__cause__ if isinstance(exc, ConnectionLost) else exc
    detail = str(cause or exc) or type(exc).__name__
    if isinstance(cause, TimeoutError):
        text = (
            f"The SMTP server {where} did not answer in time. Check the host, the port and "
            "the security setting (tls is usually port 465, starttls port 587)."
        )
    elif isinstance(cause, ssl.SSLError):
        text = (
            f"The TLS connection to {where} failed: {detail}. Check the security setting "
            "(tls is usually port 465, starttls port 587) and the server's certificate."
        )
    elif isinstance(exc, ConnectionLost) or isinstance(cause, EOFError):
        text = f"The SMTP server {where} closed the connection unexpectedly."
    else:
        text = f"Could not connect to the SMTP server {where}: {detail}."
    return SmtpFailed(text, smtp_code=None, smtp_message=detail)
