"""Marketing → Bounces: the org's bounce and complaint reports, filtered by type or by send
(the email log links a bounced send here), and one report as received (ADMIN)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.bounces import service
from herald.bounces.models import ReportType
from herald.runtime import get_session
from herald.text import is_number
from herald.web.deps import page_requires
from herald.web.pages import render

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(page_requires(Capability.MARKETING_READ))]
RawReader = Annotated[Principal, Depends(page_requires(Capability.BOUNCE_RAW))]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]

REPORTS_PER_PAGE = 50
TYPE_LABELS = {
    ReportType.HARD: "Hard bounce",
    ReportType.SOFT: "Soft bounce",
    ReportType.COMPLAINT: "Complaint",
    ReportType.IGNORED: "Ignored",
    ReportType.UNMATCHED: "Unmatched",
}


@router.get("/marketing/bounces", response_class=HTMLResponse)
def bounce_list(
    request: Request,
    principal: Reader,
    session: Db,
    type: str = "",
    send: str = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    chosen = ReportType(type) if type in set(ReportType) else None
    send_id = int(send) if is_number(send) and 0 < int(send) < 2**63 else None
    found = service.list_reports(
        session,
        principal.org_id,
        report_type=chosen,
        send_id=send_id,
        page=page,
        page_size=REPORTS_PER_PAGE,
    )
    return render(
        request,
        "marketing/bounces.html",
        principal,
        reports=found.items,
        total=found.total,
        page=found.page,
        pages=max(math.ceil(found.total / REPORTS_PER_PAGE), 1),
        type_filter=chosen.value if chosen else "",
        send_filter=send_id,
        types=TYPE_LABELS,
        can_read_raw=allows(principal, Capability.BOUNCE_RAW),
    )


@router.get("/marketing/bounces/{report_id}/raw", response_class=HTMLResponse)
def raw_report(request: Request, report_id: str, principal: RawReader, session: Db) -> HTMLResponse:
    report = service.get_report(session, principal.org_id, report_id)
    raw = service.get_raw(session, principal.org_id, report.id)
    return render(
        request,
        "marketing/bounce_raw.html",
        principal,
        report=report,
        raw=raw,
        text=raw.content.decode("utf-8", "replace"),
        types=TYPE_LABELS,
    )
