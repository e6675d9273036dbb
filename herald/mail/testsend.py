"""Sending one test message (the configuration's, or a campaign's) and reporting the server's
answer in words an admin can act on; how many an org may send per minute.

Before the server has answered as an SMTP server, every failure reads the same (refused,
silent, or another protocol's banner), so that a test message is no port scanner.
"""

from __future__ import annotations

import dataclasses
import ssl
import threading
import time
import uuid
from collections import deque

from herald.errors import HeraldError, RateLimited
from herald.log import get_logger
from herald.mail.egress import HostNotAllowed
from herald.mail.mailer import MailerFactory, ServerUnavailable
from herald.mail.pool import ConnectionPool
from herald.mail.smtp import ConnectionLost, NoSmtpServer, Reply, SmtpError, SmtpSettings

log = get_logger(__name__)

TIMEOUT_SECONDS = 20.0
MAX_REPLY_CHARS = 1000
RATE_WINDOW_SECONDS = 60.0


class SmtpFailed(HeraldError):
    """The SMTP server could not be reached or refused: a bad gateway from the client's view."""

    status = 502
    code = "smtp_failed"

    def __init__(self, message: str, *, smtp_code: int | None, smtp_message: str) -> None:
        details = {"smtpCode": smtp_code, "smtpMessage": smtp_message[:MAX_REPLY_CHARS]}
        super().__init__(message, details=details)


async def deliver(
    smtp: SmtpSettings,
    sender: str,
    to: str,
    message: bytes,
    *,
    timeout: float | None = None,
    mailer_factory: MailerFactory = ConnectionPool,
) -> Reply:
    """Send one message on its own connection; the server's answer, or ``SmtpFailed``
    (502), or ``HostNotAllowed`` (422) when the host now resolves to a refused address."""
    smtp = dataclasses.replace(smtp, timeout=TIMEOUT_SECONDS if timeout is None else timeout)
    mailer = mailer_factory(smtp, 1)
    try:
        reply = await mailer.send(sender, to, message)
    except ServerUnavailable as exc:
        failure = describe_failure(exc.__cause__ or exc, smtp, sender, to)
    except (SmtpError, ConnectionLost, OSError, TimeoutError, EOFError) as exc:
        failure = describe_failure(exc, smtp, sender, to)
    else:
        log.info("mail.test_sent", host=smtp.host, port=smtp.port, smtp_code=reply.code)
        return reply
    finally:
        await mailer.close()
    if isinstance(failure, HostNotAllowed):
        raise failure
    log.warning(
        "mail.test_failed",
        host=smtp.host,
        port=smtp.port,
        smtp_code=failure.details["smtpCode"],
    )
    raise failure


_REFUSALS = {
    "AUTH": "refused the username or password",
    "greeting": "refused the connection",
    "MAIL FROM": "refused the sender",
    "RCPT TO": "refused the recipient",
    "DATA": "refused the message",
    "end of DATA": "refused the message",
}


def describe_failure(
    exc: BaseException, smtp: SmtpSettings, sender: str, to: str
) -> SmtpFailed | HostNotAllowed:
    where = f"{smtp.host}:{smtp.port}"
    if isinstance(exc, HostNotAllowed):
        return exc
    if isinstance(exc, SmtpError):
        code = exc.reply.code or None
        what = _REFUSALS.get(exc.during, "answered with an error")
        what = {"MAIL FROM": f"{what} {sender}", "RCPT TO": f"{what} {to}"}.get(exc.during, what)
        if exc.during == "STARTTLS" and code is None:
            text = f"The SMTP server {where} does not offer STARTTLS: {exc.reply.text}."
        elif exc.during == "AUTH" and code is None:
            text = f"Herald did not log in to {where}: {exc.reply.text}."
        else:
            text = f"The SMTP server {where} {what} ({exc.reply})."
        return SmtpFailed(text, smtp_code=code, smtp_message=exc.reply.text)
    if isinstance(exc, NoSmtpServer) or (isinstance(exc, ssl.SSLError) and smtp.security == "tls"):
        text = (
            f"Could not connect to {where}, or the server did not answer as an SMTP server. "
            "Check the host, the port and the security setting (tls is usually port 465, "
            "starttls port 587) and, for tls, the server's certificate."
        )
        return SmtpFailed(text, smtp_code=None, smtp_message=str(NoSmtpServer()))
    cause = exc.__cause__ if isinstance(exc, ConnectionLost) else exc
    if isinstance(cause, TimeoutError):
        text = f"The SMTP server {where} did not answer in time."
        detail = "timed out"
    elif isinstance(cause, ssl.SSLError):
        text = (
            f"The TLS connection to {where} failed: {cause.reason or cause}. Check the "
            "server's certificate."
        )
        detail = str(cause.reason or cause)
    else:
        text = f"The SMTP server {where} closed the connection unexpectedly."
        detail = "connection closed"
    return SmtpFailed(text, smtp_code=None, smtp_message=detail)


class TestMessageLimit:
    """At most ``limit`` test messages per org and minute, counted in this process."""

    def __init__(self) -> None:
        self._sent: dict[uuid.UUID, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, org_id: uuid.UUID, limit: int, count: int = 1) -> None:
        """Count ``count`` messages, or raise 429 ``rate_limited`` without counting them."""
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(org_id, deque())
            while sent and sent[0] <= now - RATE_WINDOW_SECONDS:
                sent.popleft()
            if len(sent) + count > limit:
                wait = int(RATE_WINDOW_SECONDS - (now - sent[0])) + 1 if sent else 60
                raise RateLimited(
                    f"Too many test messages: at most {limit} a minute for your organisation. "
                    f"Try again in {wait} seconds.",
                    headers={"Retry-After": str(wait)},
                )
            sent.extend([now] * count)


# One per process: the settings test and the campaign test share an org's allowance.
test_message_limit = TestMessageLimit()
