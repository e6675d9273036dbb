"""The bounce mailbox: an org's IMAP folder read by one worker at a time (the lease in
herald.mailconfig.polls). Each new message is parsed as the SMTP receiver's are; a report
Herald recognises goes through herald.bounces.ingest and is then moved to Herald/Processed;
anything else is left where it is, unread (it is fetched with BODY.PEEK) and unrecorded."""

from __future__ import annotations

import uuid
from email.parser import BytesHeaderParser
from email.policy import compat32

from herald.bounces.ingest import Incoming, ingest
from herald.bounces.models import Source
from herald.db import unit_of_work
from herald.log import get_logger
from herald.mail import egress
from herald.mail.imap import ImapFailed, ImapSettings, Mailbox, open_mailbox
from herald.mail.reports import Kind, ParsedReport, parse_report
from herald.mail.sendref import SendRefKeys, split_return_path
from herald.mailconfig import polls
from herald.mailconfig.bounceaddress import bounce_addresses
from herald.runtime import Runtime

log = get_logger("herald.bounces")

BATCH = 50  # messages read, then the progress recorded (and the lease renewed)
# Where a delivering server wrote the address a message was delivered to.
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def recognised(parsed: ParsedReport, raw: bytes) -> bool:
    """A bounce or complaint, or a delivery or feedback report that is neither (a delay
    notice, say): mail Herald reads. Auto-replies and anything else are a person's to read."""
    if parsed.kind is not Kind.IGNORED:
        return True
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    return headers.get_content_type() == "multipart/report"


class MailboxPoll:
    """One poll of one org's mailbox, by the worker that holds its lease."""

    def __init__(self, runtime: Runtime, claim: polls.Claim) -> None:
        self.runtime = runtime
        self.claim = claim
        self.keys = SendRefKeys.from_secret(runtime.settings.secret_key)
        self.moved = 0

    def run(self) -> str | None:
        """Read the new messages; the error shown in Settings, or None. An unforeseen error
        (the database away) is raised: the lease runs out and another poll tries again."""
        settings = self.runtime.settings
        error: str | None = None
        try:
            with unit_of_work(self.runtime.sessions, write=False) as session:
                account = polls.mailbox_settings(session, settings, self.claim.org_id)
            self._read(account)
        except (ImapFailed, egress.HostNotAllowed) as exc:
            error = exc.message if isinstance(exc, egress.HostNotAllowed) else str(exc)
            log.warning("bounce_mailbox.poll_failed", org_id=str(self.claim.org_id), error=error)
        with unit_of_work(self.runtime.sessions) as session:
            polls.finish(session, self.claim, error, settings.bounce_poll_seconds)
        if error is None:
            log.info("bounce_mailbox.polled", org_id=str(self.claim.org_id), moved=self.moved)
        return error

    def _read(self, account: ImapSettings) -> None:
        with open_mailbox(account) as box:
            same_folder = self.claim.uid_validity == box.uid_validity
            after = self.claim.last_uid if same_folder else 0
            while True:
                uids = box.new_uids(after, BATCH)
                if not uids:
                    return
                moved = self._take(box, uids)
                after = uids[-1]
                self.moved += moved
                if not self._advance(box.uid_validity, after, moved) or len(uids) < BATCH:
                    return

    def _take(self, box: Mailbox, uids: list[int]) -> int:
        """Ingest and move the recognised messages among ``uids``; how many moved."""
        moved = 0
        for message in box.fetch(uids):
            if isinstance(message, int):  # too large to be a report: left as it is
                continue
            parsed = parse_report(message.raw)
            if not recognised(parsed, message.raw):
                continue
            self._ingest(message.raw, parsed)
            # after the commit: a crash between the two reads it again next time, and the
            # ingest knows the same bytes (it counts them once)
            box.move_to_processed(message.uid)
            moved += 1
        return moved

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
            if addresses.get(split_return_path(address).bounce_address) == org_id:
                return address
    return None
