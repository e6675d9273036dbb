"""CRM pages: the contact list, the contact form (create, edit, delete) and CSV import.

Every role reads; ADMIN and MANAGER write. A USER sees the write buttons disabled, with why.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.crm import service
from herald.crm.importer import import_contacts
from herald.crm.models import Contact
from herald.crm.schemas import ContactCreateIn, ContactPatchIn
from herald.crm.upload import read_form, uploaded_file
from herald.errors import Conflict, ValidationFailed
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings
from herald.text import is_number
from herald.web.csrf import check_form_token, verify_csrf, verify_csrf_before_body
from herald.web.deps import page_requires, page_user
from herald.web.pages import field_errors, redirect, render

router = APIRouter(include_in_schema=False)
upload_pages = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(page_user)]
Writer = Annotated[Principal, Depends(page_requires(Capability.CRM_WRITE))]

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
SHOWN_IMPORT_ERRORS = 20
READ_ONLY_REASON = "Only an ADMIN or a MANAGER can change contacts; your role is read-only."
NOTICES = {
    "created": "Contact created.",
    "saved": "Contact saved.",
    "deleted": "Contact deleted.",
    "email_status_reset": "Email status reset to OK: campaigns may mail this address again.",
}


def can_write(principal: Principal) -> bool:
    return allows(principal, Capability.CRM_WRITE)


def page_number(value: str | None) -> int:
    """A forgiving ?page=: anything but a positive number is page 1."""
    if value and is_number(value):
        return max(1, min(int(value), MAX_PAGE))
    return 1


@router.get("/crm", response_model=None)
def crm_home(principal: Reader) -> RedirectResponse:
    return redirect("/crm/contacts")


@router.get("/crm/contacts", response_class=HTMLResponse)
def contact_list(
    request: Request,
    principal: Reader,
    session: Db,
    status: str = "",
    q: str = "",
    page: str | None = None,
    notice: str = "",
) -> HTMLResponse:
    statuses = service.list_statuses(session, principal.org_id)
    error = None
    try:
        found = service.list_contacts(
            session,
            principal.org_id,
            status=status or None,
            query=q or None,
            page=page_number(page),
            page_size=PAGE_SIZE,
        )
    except ValidationFailed as exc:
        error = exc.message
        found = service.ContactPage([], 0, 1, PAGE_SIZE)
    pages = max(1, -(-found.total // PAGE_SIZE))
    return render(
        request,
        "crm/contacts.html",
        principal,
        status=422 if error else 200,
        contacts=found.items,
        total=found.total,
        page=found.page,
        pages=pages,
        statuses=statuses,
        selected_status=status,
        q=q,
        error=error,
        notice=NOTICES.get(notice),
        can_write=can_write(principal),
        read_only_reason=READ_ONLY_REASON,
    )


def _form_values(contact: Contact | None) -> dict[str, Any]:
    if contact is None:
        return {
            "email": "",
            "firstName": "",
            "lastName": "",
            "companyName": "",
            "status": "",
            "marketingOptOut": False,
        }
    return {
        "email": contact.email or "",
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "companyName": contact.company_name,
        "status": contact.status,
        "marketingOptOut": contact.marketing_opt_out,
    }


def _render_form(
    request: Request,
    principal: Principal,
    session: Session,
    *,
    contact: Contact | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "crm/contact_form.html",
        principal,
        status=status,
        contact=contact,
        values=values,
        errors=errors or {},
        notice=notice,
        statuses=service.list_statuses(session, principal.org_id),
        can_write=can_write(principal),
        can_reset_email_status=allows(principal, Capability.EMAIL_STATUS_RESET),
        read_only_reason=READ_ONLY_REASON,
    )


ContactField = Annotated[str, Form(max_length=10_000)]


@router.get("/crm/contacts/new", response_class=HTMLResponse)
def new_contact(request: Request, principal: Writer, session: Db) -> HTMLResponse:
    return _render_form(request, principal, session, contact=None, values=_form_values(None))


def contact_form(
    email: ContactField = "",
    first_name: ContactField = "",
    last_name: ContactField = "",
    company_name: ContactField = "",
    status: ContactField = "",
    marketing_opt_out: Annotated[str, Form(max_length=10)] = "",
) -> dict[str, Any]:
    """The contact form's fields, as the create and the edit page both post them."""
    return {
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "company_name": company_name,
        "status": status,
        "marketing_opt_out": bool(marketing_opt_out),
    }


@router.post("/crm/contacts/new", response_model=None, dependencies=[Depends(verify_csrf)])
def create_contact(
    request: Request,
    principal: Writer,
    session: Db,
    form: Annotated[dict[str, Any], Depends(contact_form)],
) -> HTMLResponse | RedirectResponse:
    data = ContactCreateIn(**form)
    try:
        contact = service.create_contact(session, principal.org_id, data)
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        return _render_form(
            request,
            principal,
            session,
            contact=None,
            values=data.model_dump(by_alias=True),
            errors=field_errors(exc, conflict_field="email"),
            status=exc.status,
        )
    return redirect(f"/crm/contacts/{contact.id}?notice=created")


@router.get("/crm/contacts/{contact_id}", response_class=HTMLResponse)
def edit_contact(
    request: Request, contact_id: str, principal: Reader, session: Db, notice: str = ""
) -> HTMLResponse:
    contact = service.get_contact(session, principal.org_id, contact_id)
    return _render_form(
        request,
        principal,
        session,
        contact=contact,
        values=_form_values(contact),
        notice=NOTICES.get(notice),
    )


@router.post("/crm/contacts/{contact_id}", response_model=None, dependencies=[Depends(verify_csrf)])
def save_contact(
    request: Request,
    contact_id: str,
    principal: Writer,
    session: Db,
    form: Annotated[dict[str, Any], Depends(contact_form)],
) -> HTMLResponse | RedirectResponse:
    data = ContactPatchIn(**form)
    try:
        contact = service.update_contact(
            session, principal.org_id, contact_id, data, actor=audit.actor(principal)
        )
    except (ValidationFailed, Conflict) as exc:
        # The service may have changed some fields before refusing one: keep none of them.
        session.rollback()
        return _render_form(
            request,
            principal,
            session,
            contact=service.get_contact(session, principal.org_id, contact_id),
            values=data.model_dump(by_alias=True),
            errors=field_errors(exc, conflict_field="email"),
            status=exc.status,
        )
    return redirect(f"/crm/contacts/{contact.id}?notice=saved")


@router.post(
    "/crm/contacts/{contact_id}/email-status",
    response_model=None,
    dependencies=[Depends(verify_csrf)],
)
def reset_email_status(
    contact_id: str,
    principal: Annotated[Principal, Depends(page_requires(Capability.EMAIL_STATUS_RESET))],
    session: Db,
) -> RedirectResponse:
    contact = service.update_contact(
        session,
        principal.org_id,
        contact_id,
        ContactPatchIn(email_status="OK"),
        actor=audit.actor(principal),
    )
    return redirect(f"/crm/contacts/{contact.id}?notice=email_status_reset")


@router.post(
    "/crm/contacts/{contact_id}/delete",
    response_model=None,
    dependencies=[Depends(verify_csrf)],
)
def delete_contact(contact_id: str, principal: Writer, session: Db) -> RedirectResponse:
    service.delete_contact(session, principal.org_id, contact_id)
    return redirect("/crm/contacts?notice=deleted")


@router.get("/crm/import", response_class=HTMLResponse)
def import_page(request: Request, principal: Reader) -> HTMLResponse:
    return _render_import(request, principal)


def _render_import(
    request: Request,
    principal: Principal,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "crm/import.html",
        principal,
        status=status,
        result=result,
        error=error,
        shown_errors=SHOWN_IMPORT_ERRORS,
        can_write=can_write(principal),
        read_only_reason=READ_ONLY_REASON,
    )


@upload_pages.post(
    "/crm/import", response_model=None, dependencies=[Depends(verify_csrf_before_body)]
)
async def import_submit(
    request: Request,
    principal: Writer,
    session: Db,
    settings: Annotated[Settings, Depends(get_settings_dep)],
) -> HTMLResponse:
    # The body is read only now, after the CSRF, login and role checks; no writer waits on it.
    session.rollback()
    form = await read_form(request)
    try:
        check_form_token(request, form)
        file = uploaded_file(form, settings.max_upload_bytes)
        result = await run_in_threadpool(
            import_contacts, file.file, session, principal.org_id, commit=session.commit
        )
    except ValidationFailed as exc:
        return _render_import(request, principal, error=exc.message, status=422)
    finally:
        await form.close()
    return _render_import(request, principal, result=result.as_dict())


router.include_router(upload_pages)
