"""The local mail catcher: an SMTP server on loopback (aiosmtpd) that accepts every message
and keeps it in a Mailbox, so a newcomer can watch a campaign arrive without a real relay.

It also plays the recipients' mail servers for the demo's bouncing contacts
(herald.dev.demo.BOUNCING): their messages are answered, a moment later, with a delivery
status notification (hard or soft) or a feedback report, sent to the message's return path
through Herald's own bounce receiver, as a real relay would."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from herald.dev import bouncer
from herald.dev.demo import BOUNCING
from herald.dev.mailbox import Mailbox
from herald.log import get_logger

log = get_logger("herald.dev")
REPORT_DELAY_SECONDS = 1.5  # as a relay's bounce comes back: after the delivery


class _KeepEverything:
    def __init__(self, mailbox: Mailbox, receiver: tuple[str, int] | None) -> None:
        self.mailbox = mailbox
        self.receiver = receiver
        self._reports: set[asyncio.Task[None]] = set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        self.mailbox.save(raw)
        for rcpt in envelope.rcpt_tos:
            kind = BOUNCING.get(rcpt.lower())
            if kind and self.receiver and envelope.mail_from:
                task = asyncio.create_task(self._report(kind, envelope.mail_from, rcpt, raw))
                self._reports.add(task)
                task.add_done_callback(self._reports.discard)
        return "250 2.0.0 Kept in the Herald dev inbox"

    async def _report(self, kind: str, return_path: str, rcpt: str, original: bytes) -> None:
        await asyncio.sleep(REPORT_DELAY_SECONDS)
        if kind == "complaint":
            report = bouncer.feedback_report(to=return_path, recipient=rcpt, original=original)
        else:
            failure = bouncer.HARD if kind == "hard" else bouncer.SOFT
            report = bouncer.delivery_status_notification(
                return_path=return_path, recipient=rcpt, failure=failure, original=original
            )
        try:
            await asyncio.to_thread(self._send, return_path, report)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("dev.report_not_sent", kind=kind, error=str(exc)[:200])

    def _send(self, return_path: str, report: bytes) -> None:
        assert self.receiver is not None
        with smtplib.SMTP(*self.receiver, timeout=30) as client:
            client.sendmail("", [return_path], report)


class MailCatcher:
    """Runs on its own thread; ``start`` returns once it accepts connections. ``receiver``:
    where Herald's bounce receiver listens, for the demo's reports."""

    def __init__(
        self,
        mailbox: Mailbox,
        host: str = "127.0.0.1",
        port: int = 1025,
        receiver: tuple[str, int] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._controller = Controller(
            _KeepEverything(mailbox, receiver), hostname=host, port=port, ready_timeout=10
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
