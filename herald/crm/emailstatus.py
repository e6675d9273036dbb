"""A contact's email status: whether its address may be mailed. Herald sets it when the
address bounces or complains (herald.bounces calls these functions); an ADMIN sets it back
to OK; a new address makes it OK again. Every function runs in the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, true, update
from sqlalchemy.orm import Session

from herald.crm.models import Contact, EmailStatus

MAX_REASON = 2000


@dataclass(frozen=True)
class ContactAddress:
    id: uuid.UUID
    email_key: str | None
    email_status: str
    email_status_at: dt.datetime | None


# Built once, run with parameters: a flood of bounces runs these many times a second.
_ADDRESS = select(
    Contact.id, Contact.email_key, Contact.email_status, Contact.email_status_at
).where(Contact.id == bindparam("contact_id"), Contact.org_id == bindparam("org_id"))
_BOUNCED = (
    update(Contact)
    .where(
        Contact.id == bindparam("contact"),
        Contact.org_id == bindparam("org"),
        Contact.email_key == bindparam("address"),
        Contact.email_status == EmailStatus.OK.value,
    )
    .values(
        email_status=EmailStatus.BOUNCED.value,
        email_status_reason=bindparam("reason"),
        email_status_at=bindparam("at", type_=Contact.email_status_at.type),
        updated_at=bindparam("at", type_=Contact.email_status_at.type),
    )
)


def contact_address(
    session: Session, org_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactAddress | None:
    row = (
        session.connection()
        .execute(_ADDRESS, {"contact_id": contact_id, "org_id": org_id})
        .one_or_none()
    )
    return ContactAddress(*row) if row else None


_BY_EMAIL = select(Contact.org_id, Contact.email_key, Contact.id).where(
    Contact.org_id.in_(bindparam("orgs", expanding=True)),
    Contact.email_key.in_(bindparam("keys", expanding=True)),
)


def contact_ids_for_emails(
    session: Session, wanted: Collection[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], uuid.UUID]:
    """(org, lower-cased address) -> the org's contact with that address, for those that
    have one, in one query."""
    if not wanted:
        return {}
    keys = {(org_id, email.lower()) for org_id, email in wanted}
    parameters = {"orgs": sorted({o for o, _ in keys}), "keys": sorted({k for _, k in keys})}
    rows = session.connection().execute(_BY_EMAIL, parameters)
    return {(org, key): contact for org, key, contact in rows if key and (org, key) in keys}


@dataclass(frozen=True)
class BounceMark:
    """A contact whose address bounced for good: BOUNCED, with why."""

    org_id: uuid.UUID
    contact_id: uuid.UUID
    address: str
    reason: str
    at: dt.datetime


def mark_bounced(session: Session, marks: Sequence[BounceMark]) -> None:
    """OK -> BOUNCED for each, only while the address is still the contact's (a bounce of
    an old address says nothing of the new one): one statement for them all."""
    if not marks:
        return
    rows = [
        {
            "contact": mark.contact_id,
            "org": mark.org_id,
            "address": mark.address.lower(),
            "reason": mark.reason[:MAX_REASON],
            "at": mark.at,
        }
        for mark in marks
    ]
    session.connection().execute(_BOUNCED, rows)


def mark_complained(
    session: Session, org_id: uuid.UUID, contact_id: uuid.UUID, *, reason: str, at: dt.datetime
) -> bool:
    """The person called the mail spam: opted out for good and COMPLAINED (whatever the
    status was: a complaint says more than a bounce). False when it already was."""
    result = session.execute(
        update(Contact)
        .where(
            Contact.id == contact_id,
            Contact.org_id == org_id,
            Contact.email_status != EmailStatus.COMPLAINED.value,
        )
        .values(
            marketing_opt_out=true(),
            email_status=EmailStatus.COMPLAINED.value,
            email_status_reason=reason[:MAX_REASON],
            email_status_at=at,
            updated_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    # already COMPLAINED; an ADMIN may have re-subscribed it since: the new complaint stands
    session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.org_id == org_id)
        .values(marketing_opt_out=true())
        .execution_options(synchronize_session=False)
    )
    return False


def set_ok(contact: Contact, reason: str, at: dt.datetime) -> None:
    """Back to OK (an ADMIN's reset, or a new address); the time starts soft bounces'
    count again."""
    contact.email_status = EmailStatus.OK.value
    contact.email_status_reason = reason[:MAX_REASON]
    contact.email_status_at = at
