"""A contact's email status: whether its address may be mailed. Herald sets it when the
address bounces or complains (herald.bounces calls these functions); an ADMIN sets it back
to OK; a new address makes it OK again. Every function runs in the caller's unit of work;
the queries are herald.crm.repository's.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from herald.crm.models import Contact, EmailStatus
from herald.crm.repository import ContactAddress, ContactRepository
from herald.text import MAX_REASON


def contact_address(
    session: Session, org_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactAddress | None:
    return ContactRepository(session, org_id).address(contact_id)


def mark_bounced(
    session: Session,
    org_id: uuid.UUID,
    contact_id: uuid.UUID,
    *,
    address: str,
    reason: str,
    at: dt.datetime,
) -> bool:
    """OK -> BOUNCED, only while ``address`` is still the contact's (a bounce of an old
    address says nothing of the new one). False when nothing changed."""
    contacts = ContactRepository(session, org_id)
    return contacts.mark_bounced(contact_id, address, reason[:MAX_REASON], at)


def mark_complained(
    session: Session, org_id: uuid.UUID, contact_id: uuid.UUID, *, reason: str, at: dt.datetime
) -> bool:
    """The person called the mail spam: opted out for good and COMPLAINED (whatever the
    status was: a complaint says more than a bounce). False when it already was."""
    contacts = ContactRepository(session, org_id)
    if contacts.mark_complained(contact_id, reason[:MAX_REASON], at):
        return True
    # already COMPLAINED; an ADMIN may have re-subscribed it since: the new complaint stands
    contacts.opt_out(contact_id)
    return False


def set_ok(contact: Contact, reason: str, at: dt.datetime) -> None:
    """Back to OK (an ADMIN's reset, or a new address); the time starts soft bounces'
    count again."""
    contact.email_status = EmailStatus.OK.value
    contact.email_status_reason = reason[:MAX_REASON]
    contact.email_status_at = at
