"""The local mail catcher's store: one ``.eml`` file per received message under a directory,
read back for the Inbox page. For ``herald dev`` only; nothing here is used in production."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import secrets
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

MESSAGE_ID = re.compile(r"^\d{19}-[0-9a-f]{8}$")
# The send's unsubscribe token in a campaign message's List-Unsubscribe URL.
UNSUBSCRIBE_TOKEN = re.compile(r"/u/([0-9a-f]{64})\b")
# Feedback-ID: <campaignId>:<orgId>:herald
FEEDBACK_ORG = re.compile(r"^[^:]*:([0-9a-fA-F-]{32,36}):herald$")
SUFFIX = ".eml"


@dataclasses.dataclass(frozen=True)
class Summary:
    id: str
    received_at: dt.datetime
    sender: str
    to: str
    subject: str
    token: str | None = None  # the unsubscribe token of the send it is, if any
    feedback_org: str | None = None  # the org its Feedback-ID names, if any


@dataclasses.dataclass(frozen=True)
class StoredMessage:
    summary: Summary
    headers: list[tuple[str, str]]
    html: str | None
    text: str | None
    raw: bytes


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, ""))
    except (ValueError, IndexError):  # a header the parser cannot decode shows raw
        return str(message.get_all(name, [""])[0])


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]


class Mailbox:
    """Messages in arrival order, named ``<nanoseconds>-<random>.eml`` so names sort by time
    and an id from a URL can only ever name a file of this directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, raw: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = f"{time.time_ns():019d}-{secrets.token_hex(4)}"
        partial = self.directory / f".{message_id}.tmp"
        partial.write_bytes(raw)
        os.replace(partial, self.directory / f"{message_id}{SUFFIX}")  # readers never see half
        return message_id

    def _path(self, message_id: str) -> Path | None:
        if not MESSAGE_ID.match(message_id):
            return None
        path = self.directory / f"{message_id}{SUFFIX}"
        return path if path.is_file() else None

    def ids(self) -> list[str]:
        """Newest first."""
        if not self.directory.is_dir():
            return []
        names = (p.name[: -len(SUFFIX)] for p in self.directory.iterdir())
        return sorted((n for n in names if MESSAGE_ID.match(n)), reverse=True)

    def all_summaries(self) -> list[Summary]:
        """Every message's summary, newest first."""
        return self.summaries(0, len(self.ids()))

    def summaries(self, offset: int = 0, limit: int = 50) -> list[Summary]:
        found = []
        for message_id in self.ids()[offset : offset + limit]:
            path = self._path(message_id)
            if path is not None:
                found.append(self._summary(message_id, _parse(path.read_bytes())))
        return found

    def get(self, message_id: str) -> StoredMessage | None:
        path = self._path(message_id)
        if path is None:
            return None
        raw = path.read_bytes()
        message = _parse(raw)
        return StoredMessage(
            summary=self._summary(message_id, message),
            headers=[(name, _header(message, name)) for name in dict.fromkeys(message.keys())],
            html=_part(message, "html"),
            text=_part(message, "plain"),
            raw=raw,
        )

    def clear(self, only: set[str] | None = None) -> int:
        """Delete every message, or ``only`` those ids."""
        removed = 0
        for message_id in self.ids():
            if only is not None and message_id not in only:
                continue
            path = self._path(message_id)
            if path is not None:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    @staticmethod
    def _summary(message_id: str, message: EmailMessage) -> Summary:
        received = dt.datetime.fromtimestamp(int(message_id[:19]) / 1e9, dt.UTC)
        unsubscribe = _header(message, "List-Unsubscribe")
        feedback = _header(message, "Feedback-ID").strip()
        return Summary(
            id=message_id,
            received_at=received,
            sender=_header(message, "From"),
            to=_header(message, "To"),
            subject=_header(message, "Subject"),
            token=token.group(1) if (token := UNSUBSCRIBE_TOKEN.search(unsubscribe)) else None,
            feedback_org=org.group(1).lower() if (org := FEEDBACK_ORG.match(feedback)) else None,
        )
