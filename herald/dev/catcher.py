"""The local mail catcher: an SMTP server on loopback (aiosmtpd) that accepts every message
and keeps it in a Mailbox, so a newcomer can watch a campaign arrive without a real relay."""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from herald.dev.mailbox import Mailbox


class _KeepEverything:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        self.mailbox.save(raw)
        return "250 2.0.0 Kept in the Herald dev inbox"


class MailCatcher:
    """Runs on its own thread; ``start`` returns once it accepts connections."""

    def __init__(self, mailbox: Mailbox, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.host, self.port = host, port
        self._controller = Controller(
            _KeepEverything(mailbox), hostname=host, port=port, ready_timeout=10
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
