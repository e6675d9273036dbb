"""The bounce mailboxes' poll schedule: which org's mailbox is due, a lease so that one
worker at a time polls it (across processes and machines: the database decides), where the
last poll stopped reading, and how it went (shown in Settings).

Lease times are the database's clock (``db_now``), as the send queue's are.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from herald.db import db_now
from herald.mail.imap import ImapFailed, ImapSettings
from herald.mailconfig.inbound import mailbox_box, parse_mailbox_security
from herald.mailconfig.models import BounceMailboxPoll
from herald.mailconfig.repository import EmailConfigRepository, MailboxPollRepository
from herald.settings import Settings
from herald.text import storable

P = BounceMailboxPoll
MAX_ERROR = 1000


@dataclass(frozen=True)
class Claim:
    """A mailbox this worker polls now, and where its last poll stopped."""

    org_id: uuid.UUID
    owner: str
    uid_validity: int | None
    last_uid: int


def anything_due(session: Session) -> bool:
    """Read-only: is a mailbox due, or configured without a schedule yet? (Asked often by
    every worker, so that a claim's write transaction is taken only when it finds work.)"""
    polls = MailboxPollRepository(session)
    return polls.any_due(db_now(session)) or bool(polls.unscheduled(limit=1))


def add_missing(session: Session) -> None:
    """A schedule row, due now, for each configured mailbox that has none (new, or saved
    again). Two workers adding one at once: the loser's insert is rolled back, harmlessly."""
    polls = MailboxPollRepository(session)
    org_ids = polls.unscheduled()
    if org_ids:
        now = db_now(session)
        for org_id in org_ids:
            polls.add(org_id, now)


def claim_due(session: Session, owner: str, lease_seconds: float) -> Claim | None:
    """Take the lease of one due mailbox (the longest waiting), or None."""
    polls = MailboxPollRepository(session)
    now = db_now(session)
    until = now + dt.timedelta(seconds=lease_seconds)
    for org_id, uid_validity, last_uid in polls.due(now, limit=5):
        if polls.take_lease(org_id, owner, now, until):
            return Claim(org_id, owner, uid_validity, last_uid)
    return None


def advance(
    session: Session,
    claim: Claim,
    uid_validity: int,
    last_uid: int,
    processed: int,
    lease_seconds: float,
) -> bool:
    """Record how far this poll has read (and renew its lease); False when the lease was
    lost to another worker, or the mailbox changed meanwhile (this one stops)."""
    now = db_now(session)
    return MailboxPollRepository(session).update_leased(
        claim.org_id,
        claim.owner,
        uid_validity=uid_validity,
        last_uid=last_uid,
        processed_last=P.processed_last + processed,
        processed_total=P.processed_total + processed,
        lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
    )


def finish(session: Session, claim: Claim, error: str | None, poll_seconds: float) -> None:
    """The poll is over: when it ended, its error (None: it went well), the next one due."""
    now = db_now(session)
    MailboxPollRepository(session).update_leased(
        claim.org_id,
        claim.owner,
        polled_at=now,
        error=storable(error)[:MAX_ERROR] if error else None,
        next_poll_at=now + dt.timedelta(seconds=poll_seconds),
        lease_owner=None,
        lease_expires_at=None,
    )


def mailbox_settings(session: Session, settings: Settings, org_id: uuid.UUID) -> ImapSettings:
    """The org's mailbox to log in to; ImapFailed when it is gone or its password cannot be
    read (the secret key changed), worded for the poll's error."""
    row = EmailConfigRepository(session, org_id).current()
    if row is None or not row.bounce_mailbox_host:
        raise ImapFailed("The bounce mailbox is no longer configured.")
    password = ""
    if row.bounce_mailbox_password_sealed is not None:
        try:
            password = mailbox_box(settings).open(row.bounce_mailbox_password_sealed)
        except ValueError:
            raise ImapFailed(
                "The stored mailbox password cannot be decrypted (HERALD_SECRET_KEY was "
                "probably changed). Enter it again under Settings → Email configuration."
            ) from None
    return ImapSettings(
        host=row.bounce_mailbox_host,
        port=row.bounce_mailbox_port,
        security=parse_mailbox_security(row.bounce_mailbox_security),
        username=row.bounce_mailbox_username,
        password=password,
        folder=row.bounce_mailbox_folder,
        verify_tls=settings.smtp_verify_tls,
        allowed_networks=settings.smtp_networks,
    )
