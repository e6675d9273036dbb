"""Queries on the org's email configuration (one row per org) and its bounce mailbox's
poll schedule."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.mailconfig.models import BounceMailboxPoll, EmailConfig
from herald.tenancy import OrgRepository

P = BounceMailboxPoll


class EmailConfigRepository(OrgRepository[EmailConfig]):
    model = EmailConfig
    noun = "email configuration"

    def current(self) -> EmailConfig | None:
        return self.session.scalars(self.select()).one_or_none()

    def current_or_new(self, defaults: EmailConfig) -> EmailConfig:
        """The org's row, or ``defaults`` inserted as it.

        Two first saves at once: the loser's insert hits the one-row-per-org constraint, is
        rolled back to its savepoint, and the winner's row is returned to be updated instead.
        """
        found = self.current()
        if found is not None:
            return found
        try:
            with self.session.begin_nested():
                return self.add(defaults)
        except IntegrityError:
            found = self.current()
            if found is None:
                raise
            return found


def bounce_address_owners(session: Session) -> list[tuple[str, uuid.UUID]]:
    """(bounce address, org) of every org that set one. Across orgs by design: the bounce
    receiver serves them all, and an address belongs to one org."""
    rows = session.execute(
        select(EmailConfig.bounce_address, EmailConfig.org_id).where(
            EmailConfig.bounce_address.is_not(None)
        )
    )
    return [(address, org_id) for address, org_id in rows if address]


def configs_by_webhook_key(session: Session, keys: list[str]) -> list[EmailConfig]:
    """The configurations these webhook keys name. Across orgs by design: a webhook URL's
    key is what names its org."""
    return list(session.scalars(select(EmailConfig).where(EmailConfig.webhook_key.in_(keys))))


class MailboxPollRepository:
    """The bounce mailboxes' poll rows. Which mailbox is due, and taking its lease, are
    asked across orgs by design (any worker polls any org's mailbox); a lease holder's
    writes name its org and its own lease."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _free(self, now: dt.datetime) -> ColumnElement[bool]:
        return (P.lease_expires_at.is_(None)) | (P.lease_expires_at < now)

    def _configured(self) -> ColumnElement[bool]:
        return EmailConfig.bounce_mailbox_host != ""

    def any_due(self, now: dt.datetime) -> bool:
        due = select(P.org_id).where(P.next_poll_at <= now, self._free(now)).limit(1)
        return self.session.scalar(due) is not None

    def unscheduled(self, limit: int | None = None) -> list[uuid.UUID]:
        """Orgs with a mailbox configured and no poll row yet."""
        missing = select(EmailConfig.org_id).where(
            self._configured(), EmailConfig.org_id.not_in(select(P.org_id))
        )
        return list(self.session.scalars(missing.limit(limit)))

    def add(self, org_id: uuid.UUID, next_poll_at: dt.datetime) -> None:
        """A row due at ``next_poll_at``; nothing when another process just added it."""
        try:
            with self.session.begin_nested():
                self.session.add(
                    P(
                        org_id=org_id,
                        next_poll_at=next_poll_at,
                        last_uid=0,
                        processed_last=0,
                        processed_total=0,
                    )
                )
        except IntegrityError:
            pass

    def due(self, now: dt.datetime, limit: int) -> list[tuple[uuid.UUID, int | None, int]]:
        """(org, UIDVALIDITY, last UID) of due mailboxes whose lease is free, longest
        waiting first."""
        rows = self.session.execute(
            select(P.org_id, P.uid_validity, P.last_uid)
            .join(EmailConfig, EmailConfig.org_id == P.org_id)
            .where(self._configured(), P.next_poll_at <= now, self._free(now))
            .order_by(P.next_poll_at)
            .limit(limit)
        )
        return [(org_id, validity, last_uid) for org_id, validity, last_uid in rows]

    def take_lease(
        self, org_id: uuid.UUID, owner: str, now: dt.datetime, until: dt.datetime
    ) -> bool:
        """The lease, if the mailbox is still due and free (of two workers, one wins)."""
        taken = self.session.execute(
            update(P)
            .where(P.org_id == org_id, P.next_poll_at <= now, self._free(now))
            .values(lease_owner=owner, lease_expires_at=until, processed_last=0)
        )
        return cast(CursorResult[Any], taken).rowcount == 1

    def update_leased(self, org_id: uuid.UUID, owner: str, **values: Any) -> bool:
        """The row's ``values``, while ``owner`` holds its lease; False when it does not."""
        done = self.session.execute(
            update(P).where(P.org_id == org_id, P.lease_owner == owner).values(**values)
        )
        return cast(CursorResult[Any], done).rowcount == 1

    def of_org(self, org_id: uuid.UUID) -> BounceMailboxPoll | None:
        return self.session.get(P, org_id)

    def forget(self, org_id: uuid.UUID) -> None:
        self.session.execute(delete(P).where(P.org_id == org_id))

    def due_at(self, org_id: uuid.UUID, at: dt.datetime) -> None:
        self.session.execute(update(P).where(P.org_id == org_id).values(next_poll_at=at))
