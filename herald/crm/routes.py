"""The CRM JSON API: contact statuses, contacts, and CSV import."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.access import Capability, enforce
from herald.auth.deps import CRM_WRITERS, Principal, current_user
from herald.crm import service
from herald.crm.importer import import_contacts
from herald.crm.schemas import (
    ContactCreateIn,
    ContactOut,
    ContactPatchIn,
    ImportResultOut,
    StatusOut,
)
from herald.crm.upload import MULTIPART_BODY, read_form, uploaded_file
from herald.openapi import BODY, INPUT, LOGGED_IN, NOT_FOUND, error_responses
from herald.runtime import get_session, get_settings_dep
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from herald.settings import Settings

MAX_PAGE = 1_000_000_000

# Every CRM route needs a login; writes need ADMIN or MANAGER (403 otherwise).
router = APIRouter(prefix="/api/crm", tags=["crm"], responses=LOGGED_IN)
upload_router = APIRouter(responses=LOGGED_IN)
WRITERS_ONLY = error_responses(
    403,
    notes={403: "Only ADMIN and MANAGER write contacts; only an ADMIN resets `emailStatus`."},
)
EMAIL_TAKEN = error_responses(
    409, notes={409: "Another contact of the organisation has this email (`email_taken`)."}
)


@router.get("/statuses", response_model=Page[StatusOut])
def list_statuses(
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> Page[StatusOut]:
    """The organisation's contact statuses, in one page."""
    names = service.list_statuses(session, principal.org_id)
    return Page(
        items=[StatusOut(name=n) for n in names],
        total=len(names),
        page=1,
        page_size=max(len(names), 1),
    )


@router.get("/contacts", response_model=Page[ContactOut], responses=INPUT)
def list_contacts(
    status: str | None = Query(None, description="Only contacts with this status."),
    q: str | None = Query(None, description="Part of the email, first, last or company name."),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> Page[ContactOut]:
    """Newest first; `status` must be one of the organisation's statuses (else 422)."""
    found = service.list_contacts(
        session, principal.org_id, status=status, query=q, page=page, page_size=page_size
    )
    return Page(
        items=[ContactOut.model_validate(c) for c in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.post(
    "/contacts",
    status_code=201,
    response_model=ContactOut,
    responses={**WRITERS_ONLY, **EMAIL_TAKEN, **BODY},
)
def create_contact(
    body: ContactCreateIn,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    """A new contact; `email` is optional, stored trimmed and unique per organisation
    (case-insensitively); `status` defaults to LEAD (else the org's first status)."""
    return ContactOut.model_validate(service.create_contact(session, principal.org_id, body))


@router.get("/contacts/{contact_id}", response_model=ContactOut, responses=NOT_FOUND)
def get_contact(
    contact_id: str,
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    """One contact of the caller's organisation (another organisation's id: 404)."""
    return ContactOut.model_validate(service.get_contact(session, principal.org_id, contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response_model=ContactOut,
    responses={**WRITERS_ONLY, **NOT_FOUND, **EMAIL_TAKEN, **BODY},
)
def patch_contact(
    contact_id: str,
    body: ContactPatchIn,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    """Only the fields sent change. `emailStatus` may only be set back to `OK`, and only by
    an ADMIN (403 `role_required` otherwise); a new `email` makes it `OK` again."""
    if "email_status" in body.model_fields_set:
        enforce(principal, Capability.EMAIL_STATUS_RESET)
    contact = service.update_contact(
        session, principal.org_id, contact_id, body, actor=audit.actor(principal)
    )
    return ContactOut.model_validate(contact)


@router.delete(
    "/contacts/{contact_id}",
    status_code=204,
    response_class=Response,
    responses={**WRITERS_ONLY, **NOT_FOUND},
)
def delete_contact(
    contact_id: str,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> Response:
    """Deletes the contact; 204, no body."""
    service.delete_contact(session, principal.org_id, contact_id)
    return Response(status_code=204)


@upload_router.post(
    "/contacts/import",
    response_model=ImportResultOut,
    openapi_extra=MULTIPART_BODY,
    responses={
        **WRITERS_ONLY,
        **error_responses(
            413,
            422,
            notes={
                413: "The file is larger than the upload limit (`details.maxBytes`).",
                422: "No `file` field, or the file is not a CSV with a usable header; invalid "
                "rows do not fail the import (they are listed in `errors`).",
            },
        ),
    },
)
async def import_contacts_csv(
    request: Request,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> ImportResultOut:
    """A multipart upload with a `file` field: a CSV whose header names the contact fields.
    A row whose email exists updates that contact; an invalid row is listed in `errors`
    (line numbers count the header as line 1) and counted in `skipped`. Rows are committed
    a chunk at a time; a problem with the file itself changes nothing."""
    # The body is read only now, after the login and role checks; no writer waits on it.
    session.rollback()
    form = await read_form(request)
    try:
        file = uploaded_file(form, settings.max_upload_bytes)
        result = await run_in_threadpool(
            import_contacts, file.file, session, principal.org_id, commit=session.commit
        )
    finally:
        await form.close()
    return ImportResultOut.model_validate(result.as_dict())


router.include_router(upload_router)
