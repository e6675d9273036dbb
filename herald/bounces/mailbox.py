"""The bounce mailbox: an org's IMAP folder read by one worker at a time (the lease in
herald.mailconfig.polls). Each new message is parsed as the SMTP receiver's are; a report
Herald recognises goes through herald.bounces.ingest and is then moved to Herald/Processed;
anything else is left where it is, unread (it is fetched with BODY.PEEK) and unrecorded."""

from __future__ import annotations

import uuid
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy.exc import InterfaceError, OperationalError

from herald.bounces.ingest import Incoming, ingest
from herald.bounces.models import Source
from herald.db import unit_of_work
from herald.log import get_logger
from herald.mail import egress
from herald.mail.imap import CONNECTION_LOST, ImapFailed, ImapSettings, Mailbox, open_mailbox
from herald.mail.reports import Kind, ParsedReport, parse_report
from herald.mail.sendref import SendRefKeys
from herald.mailconfig import polls
from herald.mailconfig.bounceaddress import bounce_addresses, return_path_org
from herald.runtime import Runtime

log = get_logger("herald.bounces")

# Where a delivering server wrote the address a message was delivered to.
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
# The database is away (not this message's fault): the poll stops, another tries again.
_DATABASE_AWAY = (OperationalError, InterfaceError)
MAX_FAILURES_SHOWN = 5


def recognised(parsed: ParsedReport, raw: bytes) -> bool:
    """A bounce or complaint, or a delivery or feedback report that is neither (a delay
    notice, say): mail Herald reads. Auto-replies and anything else are a person's to read."""
    if parsed.kind is not Kind.IGNORED:
        return True
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    return headers.get_content_type() == "multipart/report"


class MailboxPoll:
    """One poll of one org's mailbox, by the worker that holds its lease. ``runtime``
    commits durably: a message is moved out of the folder only once its report is on disk."""

    def __init__(self, runtime: Runtime, claim: polls.Claim) -> None:
        self.runtime = runtime
        self.claim = claim
        self.keys = SendRefKeys.from_secret(runtime.settings.secret_key)
        self.moved = 0
        self.failures: list[str] = []  # messages that could not be taken, left in place

    def run(self) -> str | None:
        """Read the new messages; the error shown in Settings, or None. When the database is
        away the error is raised: the lease runs out and another poll tries again."""
        settings = self.runtime.settings
        org = str(self.claim.org_id)
        error: str | None = None
        try:
            with unit_of_work(self.runtime.sessions, write=False) as session:
                account = polls.mailbox_settings(session, settings, self.claim.org_id)
            self._read(account)
        except (ImapFailed, egress.HostNotAllowed) as exc:
            error = exc.message if isinstance(exc, egress.HostNotAllowed) else str(exc)
            log.warning("bounce_mailbox.poll_failed", org_id=org, error=error)
        except _DATABASE_AWAY:
            raise
        except Exception as exc:  # a bug or a server's oddity: said in Settings, not hidden
            error = f"The mailbox could not be read: an unexpected {type(exc).__name__}."
            log.error("bounce_mailbox.poll_failed", org_id=org, error=type(exc).__name__)
        if error is None and self.failures:
            shown = "; ".join(self.failures[:MAX_FAILURES_SHOWN])
            error = f"{len(self.failures)} message(s) could not be read and were left in the "
            error += f"folder ({shown})."
        with unit_of_work(self.runtime.sessions) as session:
            polls.finish(session, self.claim, error, settings.bounce_poll_seconds)
        if error is None:
            log.info("bounce_mailbox.polled", org_id=org, moved=self.moved)
        return error

    def _read(self, account: ImapSettings) -> None:
        """Each new message, one at a time: taken, then the progress recorded and the
        lease renewed, so a slow mailbox never outlives its lease unnoticed."""
        with open_mailbox(account) as box:
            same_folder = self.claim.uid_validity == box.uid_validity
            for uid in box.new_uids(self.claim.last_uid if same_folder else 0):
                moved = self._take_safely(box, uid)
                self.moved += moved
                if not self._advance(box.uid_validity, uid, moved):
                    return

    def _take_safely(self, box: Mailbox, uid: int) -> int:
        """``_take``; a message it fails on is left where it is, said in the poll's error,
        and passed over: one odd message must not hold up the mailbox for ever."""
        try:
            return self._take(box, uid)
        except (*CONNECTION_LOST, *_DATABASE_AWAY):
            raise
        except Exception as exc:
            self.failures.append(f"UID {uid}: {type(exc).__name__}")
            log.error(
                "bounce_mailbox.message_failed",
                org_id=str(self.claim.org_id),
                uid=uid,
                error=type(exc).__name__,
            )
            return 0

    def _take(self, box: Mailbox, uid: int) -> int:
        """Ingest and move the message if Herald recognises it; 1 when it moved."""
        message = box.fetch(uid)
        if message is None:  # too large to be a report, or gone: left as it is
            return 0
        parsed = parse_report(message.raw)
        if not recognised(parsed, message.raw):
            return 0
        self._ingest(message.raw, parsed)
        # after the commit: a crash between the two reads it again next time, and the
        # ingest knows the same bytes (it counts them once)
        box.move_to_processed(message.uid)
        return 1

    def _ingest(self, raw: bytes, parsed: ParsedReport) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            envelope_to = _delivered_to(raw, bounce_addresses(session), self.claim.org_id)
            incoming = Incoming(Source.IMAP, raw, envelope_to=envelope_to, parsed=parsed)
            ingest(session, self.keys, incoming, org_id=self.claim.org_id)

    def _advance(self, uid_validity: int, last_uid: int, moved: int) -> bool:
        with unit_of_work(self.runtime.sessions) as session:
            kept = polls.advance(
                session,
                self.claim,
                uid_validity,
                last_uid,
                moved,
                self.runtime.settings.lease_seconds,
            )
        if not kept:
            log.warning("bounce_mailbox.lease_lost", org_id=str(self.claim.org_id))
        return kept


def _delivered_to(raw: bytes, addresses: dict[str, uuid.UUID], org_id: uuid.UUID) -> str | None:
    """The org's bounce address (with the send's tag) the report was delivered to, when the
    mailbox's server recorded it; any other address says nothing about the send."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    for name in _DELIVERED_TO:
        for value in headers.get_all(name) or []:
            address = str(value).strip()
            if return_path_org(addresses, address) == org_id:
                return address
    return None
