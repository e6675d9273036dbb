"""An org's IMAP mailbox, through IMAPClient: log in over TLS (implicit or STARTTLS) to the
address the egress rule checked, read new messages without marking them read (BODY.PEEK),
and move the ones Herald recognised to ``Herald/Processed``."""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from herald.mail import egress, tls

PROCESSED = ("Herald", "Processed")
DEFAULT_TIMEOUT = 30.0
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # as the SMTP receiver: larger is no report


class ImapFailed(Exception):
    """The mailbox could not be read; the message is worded for an admin."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # "tls" | "starttls": Herald logs in only over TLS
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    verify_tls: bool = True
    allowed_networks: tuple[egress.Network, ...] = ()
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class NewMessage:
    uid: int
    raw: bytes


class _PinnedIMAP4(imaplib.IMAP4):
    """imaplib's connection to the address the egress rule checked (not a second lookup
    of the name, which DNS could answer differently), TLS checked against the name."""

    def __init__(
        self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext | None
    ) -> None:
        self._address = address
        self._context = context
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), timeout)
        if self._context is None:
            return sock
        return self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedClient(IMAPClient):
    """IMAPClient over ``_PinnedIMAP4`` (``_create_IMAP4`` is where IMAPClient builds its
    imaplib connection; the integration tests against Dovecot catch a change of it)."""

    def __init__(self, settings: ImapSettings, address: str, context: ssl.SSLContext) -> None:
        self._address = address
        super().__init__(
            settings.host,
            settings.port,
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=settings.timeout,
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        return _PinnedIMAP4(
            self.host,
            self._address,
            self.port,
            self._timeout.connect,
            self.ssl_context if self.ssl else None,
        )


def _checked_address(settings: ImapSettings) -> str:
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ImapFailed(f"{settings.host} does not resolve.") from None
    addresses = [str(info[4][0]).partition("%")[0] for info in infos]
    egress.check_addresses(settings.host, addresses, settings.allowed_networks)
    return addresses[0]


class Mailbox:
    """A logged-in session on the mailbox's folder (use ``open_mailbox``)."""

    def __init__(self, client: IMAPClient, folder: str) -> None:
        self.client = client
        self.folder = folder
        selected = client.select_folder(folder)
        try:
            self.uid_validity = int(selected[b"UIDVALIDITY"])
        except (KeyError, TypeError, ValueError):
            raise ImapFailed(
                f"The server gave no UIDVALIDITY for the folder {folder!r} (RFC 3501 "
                "requires it): Herald cannot tell which of its messages it has read."
            ) from None
        self._processed: str | None = None

    def new_uids(self, after_uid: int) -> list[int]:
        """UIDs above ``after_uid``, oldest first; read or not."""
        # "N:*" always matches the last message, even below N: filter again
        found = self.client.search(["UID", f"{after_uid + 1}:*"])
        return sorted(uid for uid in found if uid > after_uid)

    def fetch(self, uid: int) -> NewMessage | None:
        """The message's bytes (BODY.PEEK: it stays unread); None for one too large to be a
        report (left as it is) or gone meanwhile. One at a time: a batch of 10 MiB
        messages would be held in memory all at once."""
        size = self.client.fetch([uid], ["RFC822.SIZE"]).get(uid, {}).get(b"RFC822.SIZE")
        if size is None or int(size) > MAX_MESSAGE_BYTES:
            return None
        body = self.client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
        return NewMessage(uid, bytes(body)) if isinstance(body, bytes) else None

    def move_to_processed(self, uid: int) -> None:
        folder = self._processed_folder()
        if self.client.has_capability("MOVE"):
            self.client.move([uid], folder)
            return
        self.client.copy([uid], folder)
        self.client.add_flags([uid], [b"\\Deleted"], silent=True)
        if self.client.has_capability("UIDPLUS"):
            # this message alone: a plain EXPUNGE would take others flagged \Deleted too
            self.client.uid_expunge([uid])

    def _processed_folder(self) -> str:
        if self._processed is None:
            delimiter = self._delimiter()
            name = delimiter.join(PROCESSED)
            if not self.client.folder_exists(name):
                try:
                    self.client.create_folder(name)
                except IMAPClientError:
                    if not self.client.folder_exists(name):  # not made by another poll
                        raise
                self.client.subscribe_folder(name)
            self._processed = name
        return self._processed

    def _delimiter(self) -> str:
        listed = self.client.list_folders("", "")
        if listed and listed[0][1]:
            delimiter: Any = listed[0][1]
            return delimiter.decode() if isinstance(delimiter, bytes) else str(delimiter)
        return "/"


@contextmanager
def open_mailbox(settings: ImapSettings) -> Iterator[Mailbox]:
    """Log in and select the folder; ImapFailed (worded for an admin) or HostNotAllowed."""
    address = _checked_address(settings)
    context = tls.client_context(settings.verify_tls)
    step = "connect to"
    try:
        with _PinnedClient(settings, address, context) as client:
            if settings.security == "starttls":
                step = "start TLS with"
                client.starttls(context)
            step = "log in to"
            client.login(settings.username, settings.password)
            step = f"open the folder {settings.folder!r} of"
            mailbox = Mailbox(client, settings.folder)
            step = "read"
            yield mailbox
    except (IMAPClientError, imaplib.IMAP4.error, OSError) as exc:
        raise ImapFailed(_worded(step, settings, exc)) from None


# The session itself is lost (not one message's trouble): the poll stops there.
CONNECTION_LOST = (imaplib.IMAP4.abort, OSError)


def _worded(step: str, settings: ImapSettings, exc: BaseException) -> str:
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"Could not {step} {where}: its TLS certificate is not trusted ({exc.verify_message})."
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"Could not {step} {where}: no answer in time."
    detail = str(exc).strip()[:300] or type(exc).__name__
    return f"Could not {step} {where}: {detail}"
