"""The bounce mailboxes' poll schedule: which org's mailbox is due, a lease so that one
worker at a time polls it (across processes and machines: the database decides), where the
last poll stopped reading, and how it went (shown in Settings).

Lease times are the database's clock (``db_now``), as the send queue's are.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.db import db_now
from herald.mail.imap import ImapFailed, ImapSettings
from herald.mailconfig.inbound import mailbox_box, parse_mailbox_security
from herald.mailconfig.models import BounceMailboxPoll, EmailConfig
from herald.settings import Settings

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
    now = db_now(session)
    free = (P.lease_expires_at.is_(None)) | (P.lease_expires_at < now)
    due = select(P.org_id).where(P.next_poll_at <= now, free).limit(1)
    missing = (
        select(EmailConfig.org_id)
        .where(EmailConfig.bounce_mailbox_host != "", EmailConfig.org_id.not_in(select(P.org_id)))
        .limit(1)
    )
    return session.scalar(due) is not None or session.scalar(missing) is not None


def add_missing(session: Session) -> None:
    """A schedule row, due now, for each configured mailbox that has none (new, or saved
    again). Two workers adding one at once: the loser's insert is rolled back, harmlessly."""
    missing = select(EmailConfig.org_id).where(
        EmailConfig.bounce_mailbox_host != "",
        EmailConfig.org_id.not_in(select(P.org_id)),
    )
    org_ids = list(session.scalars(missing))
    if not org_ids:
        return
    now = db_now(session)
    for org_id in org_ids:
        try:
            with session.begin_nested():
                session.add(
                    P(
                        org_id=org_id,
                        next_poll_at=now,
                        last_uid=0,
                        processed_last=0,
                        processed_total=0,
                    )
                )
        except IntegrityError:
            continue


def claim_due(session: Session, owner: str, lease_seconds: float) -> Claim | None:
    """Take the lease of one due mailbox (the longest waiting), or None."""
    now = db_now(session)
    free = (P.lease_expires_at.is_(None)) | (P.lease_expires_at < now)
    candidates = session.execute(
        select(P.org_id, P.uid_validity, P.last_uid)
        .join(EmailConfig, EmailConfig.org_id == P.org_id)
        .where(EmailConfig.bounce_mailbox_host != "", P.next_poll_at <= now, free)
        .order_by(P.next_poll_at)
        .limit(5)
    ).all()
    until = now + dt.timedelta(seconds=lease_seconds)
    for org_id, uid_validity, last_uid in candidates:
        # the same conditions again, in the UPDATE: of two workers, one takes it
        taken = session.execute(
            update(P)
            .where(P.org_id == org_id, P.next_poll_at <= now, free)
            .values(lease_owner=owner, lease_expires_at=until, processed_last=0)
        )
        assert isinstance(taken, CursorResult)
        if taken.rowcount == 1:
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
    lost to another worker (this one stops)."""
    now = db_now(session)
    done = session.execute(
        update(P)
        .where(P.org_id == claim.org_id, P.lease_owner == claim.owner)
        .values(
            uid_validity=uid_validity,
            last_uid=last_uid,
            processed_last=P.processed_last + processed,
            processed_total=P.processed_total + processed,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
        )
    )
    assert isinstance(done, CursorResult)
    return done.rowcount == 1


def finish(session: Session, claim: Claim, error: str | None, poll_seconds: float) -> None:
    """The poll is over: when it ended, its error (None: it went well), the next one due."""
    now = db_now(session)
    session.execute(
        update(P)
        .where(P.org_id == claim.org_id, P.lease_owner == claim.owner)
        .values(
            polled_at=now,
            error=error[:MAX_ERROR] if error else None,
            next_poll_at=now + dt.timedelta(seconds=poll_seconds),
            lease_owner=None,
            lease_expires_at=None,
        )
    )


def mailbox_settings(session: Session, settings: Settings, org_id: uuid.UUID) -> ImapSettings:
    """The org's mailbox to log in to; ImapFailed when it is gone or its password cannot be
    read (the secret key changed), worded for the poll's error."""
    row = session.scalars(select(EmailConfig).where(EmailConfig.org_id == org_id)).one_or_none()
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
