"""The bounce reports API, under /api/marketing: the list (licence `marketing`, ADMIN or
MANAGER), one report as received and bounces added by hand (ADMIN)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from herald.audit import service as audit
from herald.auth.access import Capability
from herald.auth.deps import MARKETING_READ, MARKETING_WRITE, Principal, require
from herald.bounces import service
from herald.bounces.models import ReportType
from herald.bounces.schemas import BounceIn, BounceOut
from herald.mail.sendref import SendRefKeys
from herald.openapi import BODY, INPUT, NOT_FOUND, error_responses
from herald.runtime import get_session, get_settings_dep
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from herald.settings import Settings

MAX_PAGE = 1_000_000_000
router = APIRouter(
    prefix="/api/marketing/bounces",
    tags=["bounces"],
    responses=error_responses(
        401,
        403,
        notes={
            403: "The organisation's licence lacks `marketing` (`feature_required`), or the "
            "caller is not ADMIN or MANAGER, or not ADMIN for a write or a raw report "
            "(`role_required`)."
        },
    ),
)
BOUNCE_RAW = require(Capability.BOUNCE_RAW)


@router.get("", response_model=Page[BounceOut], responses=INPUT)
def list_bounces(
    type: ReportType | None = Query(None, description="Only reports of this type."),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> Page[BounceOut]:
    """The organisation's bounce and complaint reports, newest first: `type` is `hard`,
    `soft`, `complaint`, `ignored` (delay notices, auto-replies, repeats, anything not
    recognised) or `unmatched` (about no send of the organisation); `source` says where
    it came from."""
    found = service.list_reports(
        session, principal.org_id, report_type=type, page=page, page_size=page_size
    )
    return Page(
        items=[BounceOut.model_validate(r) for r in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.get(
    "/{report_id}/raw",
    response_class=Response,
    responses={
        200: {
            "description": "The report as received, as text (at most its first 256 KiB; "
            "`X-Herald-Report-Size` gives the whole size).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **NOT_FOUND,
    },
)
def raw_report(
    report_id: str,
    principal: Principal = Depends(BOUNCE_RAW),
    session: Session = Depends(get_session, scope="function"),
) -> Response:
    """One report as received (ADMIN: it holds what the bouncing server quoted)."""
    raw = service.get_raw(session, principal.org_id, report_id)
    return Response(
        raw.content.decode("utf-8", "replace"),
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Herald-Report-Size": str(raw.size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "",
    status_code=201,
    response_model=BounceOut,
    responses=BODY,
)
async def add_bounce(
    body: BounceIn,
    request: Request,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    """A bounce or complaint learnt elsewhere: `{"email", "type": "hard" | "soft" |
    "complaint", "reason"}`. Matched to the organisation's latest delivered send to `email`
    and applied like any report (the send BOUNCED, the contact's emailStatus...); without
    such a send it is recorded as `unmatched` and changes nothing. Audited. The same event
    about the same send again (a retry) answers 200 with the report that counted it."""
    raw = await request.body()
    keys = SendRefKeys.from_secret(settings.secret_key)
    added = await run_in_threadpool(
        service.add_bounce, session, keys, principal.org_id, body, raw, actor=audit.actor(principal)
    )
    shown = BounceOut.model_validate(added.report).model_dump(mode="json", by_alias=True)
    return JSONResponse(shown, status_code=200 if added.repeat else 201)
