"""The CRM JSON API: contact statuses, contacts, and CSV import."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from sqlalchemy.orm import Session

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
from herald.crm.upload import too_large
from herald.runtime import get_session, get_settings_dep
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from herald.settings import Settings

MAX_PAGE = 1_000_000_000

router = APIRouter(prefix="/api/crm", tags=["crm"])
upload_router = APIRouter()


@router.get("/statuses", response_model=Page[StatusOut])
def list_statuses(
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> Page[StatusOut]:
    names = service.list_statuses(session, principal.org_id)
    return Page(
        items=[StatusOut(name=n) for n in names],
        total=len(names),
        page=1,
        page_size=max(len(names), 1),
    )


@router.get("/contacts", response_model=Page[ContactOut])
def list_contacts(
    status: str | None = Query(None, description="Only contacts with this status."),
    q: str | None = Query(None, description="Part of the email, first, last or company name."),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> Page[ContactOut]:
    found = service.list_contacts(
        session, principal.org_id, status=status, query=q, page=page, page_size=page_size
    )
    return Page(
        items=[ContactOut.model_validate(c) for c in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.post("/contacts", status_code=201, response_model=ContactOut)
def create_contact(
    body: ContactCreateIn,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    return ContactOut.model_validate(service.create_contact(session, principal.org_id, body))


@router.get("/contacts/{contact_id}", response_model=ContactOut)
def get_contact(
    contact_id: str,
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    return ContactOut.model_validate(service.get_contact(session, principal.org_id, contact_id))


@router.patch("/contacts/{contact_id}", response_model=ContactOut)
def patch_contact(
    contact_id: str,
    body: ContactPatchIn,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> ContactOut:
    contact = service.update_contact(session, principal.org_id, contact_id, body)
    return ContactOut.model_validate(contact)


@router.delete("/contacts/{contact_id}", status_code=204, response_class=Response)
def delete_contact(
    contact_id: str,
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
) -> Response:
    service.delete_contact(session, principal.org_id, contact_id)
    return Response(status_code=204)


@upload_router.post("/contacts/import", response_model=ImportResultOut)
def import_contacts_csv(
    file: UploadFile = File(..., description="A CSV file; the header names the columns."),
    principal: Principal = Depends(CRM_WRITERS),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> ImportResultOut:
    """Sync on purpose: the import runs in the threadpool, reading the spooled upload."""
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise too_large(settings.max_upload_bytes)
    result = import_contacts(file.file, session, principal.org_id)
    return ImportResultOut.model_validate(result.as_dict())


router.include_router(upload_router)
