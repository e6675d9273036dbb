"""Contact rules: statuses, the per-org unique email, listing and editing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.crm import emailstatus, fields
from herald.crm.models import Contact, EmailStatus
from herald.crm.repository import ContactRepository, StatusRepository
from herald.crm.schemas import ContactCreateIn, ContactPatchIn
from herald.db import utcnow
from herald.errors import Conflict, ValidationFailed

OK = EmailStatus.OK.value


@dataclass(frozen=True)
class ContactPage:
    items: list[Contact]
    total: int
    page: int
    page_size: int


def _email_taken() -> Conflict:
    return Conflict("Another contact in this org already has this email.", code="email_taken")


def list_statuses(session: Session, org_id: uuid.UUID) -> list[str]:
    return StatusRepository(session, org_id).names()


def list_contacts(
    session: Session,
    org_id: uuid.UUID,
    *,
    status: str | None = None,
    query: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> ContactPage:
    if status is not None and status.strip():
        status = fields.clean_status(status, list_statuses(session, org_id))
    else:
        status = None
    repo = ContactRepository(session, org_id)
    stmt = repo.search(status=status, query=fields.clean_query(query))
    return ContactPage(repo.page(stmt, page, page_size), repo.count(stmt), page, page_size)


def get_contact(session: Session, org_id: uuid.UUID, contact_id: str) -> Contact:
    return ContactRepository(session, org_id).get(contact_id)


def _claim_email(repo: ContactRepository, email: str | None, owner: Contact | None) -> None:
    key = fields.email_key(email)
    if key is None:
        return
    holder = repo.find_by_email_key(key)
    if holder is not None and holder is not owner:
        raise _email_taken()


def _flush(repo: ContactRepository) -> None:
    """Flush; a concurrent write of the same email surfaces as the same 409."""
    try:
        repo.session.flush()
    except IntegrityError:
        raise _email_taken() from None


def create_contact(session: Session, org_id: uuid.UUID, data: ContactCreateIn) -> Contact:
    statuses = list_statuses(session, org_id)
    email = fields.clean_email(data.email)
    contact = Contact(
        email=email,
        email_key=fields.email_key(email),
        first_name=fields.clean_text(data.first_name, "firstName"),
        last_name=fields.clean_text(data.last_name, "lastName"),
        company_name=fields.clean_text(data.company_name, "companyName"),
        status=(
            fields.clean_status(data.status, statuses)
            if data.status is not None and data.status.strip()
            else fields.default_status(statuses)
        ),
        marketing_opt_out=data.marketing_opt_out,
    )
    repo = ContactRepository(session, org_id)
    _claim_email(repo, email, None)
    try:
        return repo.add(contact)
    except IntegrityError:
        raise _email_taken() from None


def update_contact(
    session: Session,
    org_id: uuid.UUID,
    contact_id: str,
    data: ContactPatchIn,
    *,
    actor: audit.Actor,
) -> Contact:
    repo = ContactRepository(session, org_id)
    contact = repo.get(contact_id)
    sent = data.model_fields_set
    if "email" in sent:
        email = fields.clean_email(data.email)
        _claim_email(repo, email, contact)
        if fields.email_key(email) != contact.email_key and contact.email_status != OK:
            emailstatus.set_ok(contact, "The email address changed.", utcnow())
        contact.email, contact.email_key = email, fields.email_key(email)
    if "first_name" in sent:
        contact.first_name = fields.clean_text(data.first_name, "firstName")
    if "last_name" in sent:
        contact.last_name = fields.clean_text(data.last_name, "lastName")
    if "company_name" in sent:
        contact.company_name = fields.clean_text(data.company_name, "companyName")
    if "status" in sent:
        if data.status is None:
            raise ValidationFailed("status cannot be null.", field="status")
        contact.status = fields.clean_status(data.status, list_statuses(session, org_id))
    if "marketing_opt_out" in sent:
        if data.marketing_opt_out is None:
            raise ValidationFailed("marketingOptOut cannot be null.", field="marketingOptOut")
        if contact.marketing_opt_out and not data.marketing_opt_out:
            audit.record(
                session,
                actor,
                "contact.resubscribed",
                target=f"contact {contact.id} {contact.email or ''}".rstrip(),
                details={"marketingOptOut": {"from": True, "to": False}},
            )
        contact.marketing_opt_out = data.marketing_opt_out
    if "email_status" in sent:
        _reset_email_status(session, contact, data.email_status, actor)
    _flush(repo)
    return contact


def _reset_email_status(
    session: Session, contact: Contact, wanted: str | None, actor: audit.Actor
) -> None:
    """Back to OK (the caller checked the role: herald.auth.access EMAIL_STATUS_RESET)."""
    if (wanted or "").strip().upper() != OK:
        raise ValidationFailed(
            "emailStatus can only be set back to OK: Herald sets BOUNCED and COMPLAINED.",
            field="emailStatus",
        )
    if contact.email_status == OK:
        return
    audit.record(
        session,
        actor,
        "contact.email_status_reset",
        target=f"contact {contact.id} {contact.email or ''}".rstrip(),
        details={
            "emailStatus": {"from": contact.email_status, "to": OK},
            "reason": contact.email_status_reason,
        },
    )
    emailstatus.set_ok(contact, f"Reset to OK by {actor.name}.", utcnow())


def delete_contact(session: Session, org_id: uuid.UUID, contact_id: str) -> None:
    repo = ContactRepository(session, org_id)
    repo.delete(repo.get(contact_id))
