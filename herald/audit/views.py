"""Settings → Audit log: the org's audit events, newest first, a page at a time (ADMIN only)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from herald.audit import service
from herald.auth.access import Capability
from herald.auth.deps import Principal
from herald.runtime import get_session
from herald.web.deps import page_requires
from herald.web.pages import render

router = APIRouter(include_in_schema=False)

EVENTS_PER_PAGE = 50


@router.get("/settings/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    principal: Annotated[Principal, Depends(page_requires(Capability.SETTINGS))],
    session: Annotated[Session, Depends(get_session, scope="function")],
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    events, total = service.list_events(session, principal.org_id, page, EVENTS_PER_PAGE)
    return render(
        request,
        "settings/audit.html",
        principal,
        events=events,
        total=total,
        page=page,
        pages=max(math.ceil(total / EVENTS_PER_PAGE), 1),
    )
