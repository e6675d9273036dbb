"""`GET /api/settings/audit`: the org's audit log, newest first (ADMIN only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from herald.audit import service
from herald.audit.schemas import AuditEventOut
from herald.auth.deps import ADMIN_ONLY, Principal
from herald.openapi import GATED, INPUT
from herald.runtime import get_session
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page

router = APIRouter(tags=["audit"])

MAX_PAGE = 1_000_000_000


@router.get(
    "/api/settings/audit",
    response_model=Page[AuditEventOut],
    response_model_by_alias=True,
    responses={**GATED, **INPUT},
)
def list_audit_events(
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> Page[AuditEventOut]:
    """The caller's organisation's audit events, newest first (`at`, then `id`, descending)."""
    events, total = service.list_events(session, principal.org_id, page, page_size)
    return Page(
        items=[AuditEventOut.model_validate(e) for e in events],
        total=total,
        page=page,
        page_size=page_size,
    )
