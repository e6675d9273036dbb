"""The campaign form pages: new and edit (Basics, Body, Tracking, Recipients with a live
count), and the live count's JSON endpoint. Thin, as the other pages: the rules live in
herald.marketing.service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session

from herald.auth.deps import Principal
from herald.crm.service import list_statuses
from herald.errors import Conflict, ValidationFailed
from herald.marketing import service
from herald.marketing.audience import ENGAGEMENT_AUDIENCES, count_eligible
from herald.marketing.models import Campaign, CampaignStatus
from herald.marketing.schemas import AudienceIn, CampaignIn
from herald.marketing.views import Csrf, Db, Reader, Writer, source_name
from herald.web.pages import redirect, render

# Before the pages' router: "/marketing/campaigns/new" is no campaign id.
router = APIRouter(include_in_schema=False)

# Service field names (camelCase, as the API names them) -> this form's field names.
FORM_FIELDS = {
    "name": "name",
    "fromName": "from_name",
    "fromEmail": "from_email",
    "subject": "subject",
    "htmlBody": "html_body",
    "textBody": "text_body",
    "audience": "audience",
    "audience.statuses": "audience",
    "audience.type": "audience",
    "audience.campaignId": "audience",
    "trackOpens": "tracking",
    "trackClicks": "tracking",
}


def _form_values(campaign: Campaign | None) -> dict[str, Any]:
    if campaign is None:
        return {
            "audience_type": "ALL",
            "statuses": [],
            "audience_campaign": "",
            "track_opens": True,
            "track_clicks": True,
        }
    audience = campaign.audience or {"type": "ALL"}
    return {
        "name": campaign.name,
        "from_name": campaign.from_name,
        "from_email": campaign.from_email,
        "subject": campaign.subject,
        "html_body": campaign.html_body,
        "text_body": campaign.text_body,
        "audience_type": audience.get("type", "ALL"),
        "statuses": list(audience.get("statuses") or []),
        "audience_campaign": audience.get("campaignId") or "",
        "track_opens": campaign.track_opens,
        "track_clicks": campaign.track_clicks,
    }


def _audience_of(values: dict[str, Any]) -> dict[str, Any]:
    """The audience the form's values describe, as stored."""
    if values["audience_type"] in ENGAGEMENT_AUDIENCES:
        return {"type": values["audience_type"], "campaignId": values["audience_campaign"]}
    return {"type": values["audience_type"], "statuses": values["statuses"]}


def _render_form(
    request: Request,
    principal: Principal,
    session: Session,
    campaign: Campaign | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    audience = _audience_of(values)
    # an engagement audience is offered only as the one the campaign already has
    current = campaign.audience if campaign is not None else {}
    follow_up = current if current.get("type") in ENGAGEMENT_AUDIENCES else None
    return render(
        request,
        "marketing/form.html",
        principal,
        status=status,
        campaign=campaign,
        values=values,
        errors=errors or {},
        org_statuses=list_statuses(session, principal.org_id),
        eligible=count_eligible(session, principal.org_id, audience),
        follow_up=follow_up,
        follow_up_source=source_name(session, principal.org_id, follow_up or {}),
    )


def _campaign_in(values: dict[str, Any]) -> CampaignIn:
    kind = values["audience_type"]
    statuses = values["statuses"] if kind == "STATUS" else None
    source = values["audience_campaign"] if kind in ENGAGEMENT_AUDIENCES else None
    return CampaignIn(
        name=values["name"],
        from_name=values["from_name"],
        from_email=values["from_email"],
        subject=values["subject"],
        html_body=values["html_body"],
        text_body=values["text_body"],
        audience=AudienceIn(type=kind, statuses=statuses, campaign_id=source),
        track_opens=values["track_opens"],
        track_clicks=values["track_clicks"],
    )


def _field_errors(exc: ValidationFailed) -> dict[str, str]:
    errors: dict[str, str] = {}
    for detail in exc.details or [{"field": "", "message": exc.message}]:
        field = FORM_FIELDS.get(str(detail.get("field")), "form")
        errors.setdefault(field, str(detail.get("message")))
    return errors


def campaign_form(
    name: Annotated[str, Form(max_length=1000)] = "",
    from_name: Annotated[str, Form(max_length=1000)] = "",
    from_email: Annotated[str, Form(max_length=1000)] = "",
    subject: Annotated[str, Form(max_length=2000)] = "",
    html_body: Annotated[str, Form(max_length=2_000_000)] = "",
    text_body: Annotated[str, Form(max_length=2_000_000)] = "",
    audience_type: Annotated[str, Form()] = "ALL",
    statuses: Annotated[list[str] | None, Form()] = None,
    audience_campaign: Annotated[str, Form(max_length=100)] = "",
    tracking_shown: Annotated[str, Form(max_length=10)] = "",
    track_opens: Annotated[str, Form(max_length=10)] = "",
    track_clicks: Annotated[str, Form(max_length=10)] = "",
) -> dict[str, Any]:
    """The posted form as the template's values (what was entered, for a re-render).
    An unticked box is not posted: ``tracking_shown`` tells that the boxes were there
    (a form without them keeps tracking on, the default)."""
    return {
        "name": name,
        "from_name": from_name,
        "from_email": from_email,
        "subject": subject,
        "html_body": html_body,
        "text_body": text_body,
        "audience_type": audience_type
        if audience_type in ("STATUS", *ENGAGEMENT_AUDIENCES)
        else "ALL",
        "statuses": statuses or [],
        "audience_campaign": audience_campaign,
        "track_opens": bool(track_opens) or not tracking_shown,
        "track_clicks": bool(track_clicks) or not tracking_shown,
    }


FormValues = Annotated[dict[str, Any], Depends(campaign_form)]


@router.get("/marketing/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request, principal: Writer, session: Db) -> HTMLResponse:
    return _render_form(request, principal, session, None, _form_values(None))


@router.post("/marketing/campaigns", response_model=None, dependencies=Csrf)
def create_campaign(
    request: Request, principal: Writer, session: Db, values: FormValues
) -> HTMLResponse | RedirectResponse:
    try:
        campaign = service.create_campaign(session, principal.org_id, _campaign_in(values))
    except ValidationFailed as exc:
        errors = _field_errors(exc)
        return _render_form(request, principal, session, None, values, errors, 422)
    return redirect(f"/marketing/campaigns/{campaign.id}?notice=created")


@router.get("/marketing/campaigns/{campaign_id}/edit", response_model=None)
def edit_campaign(
    request: Request, campaign_id: str, principal: Writer, session: Db
) -> HTMLResponse | RedirectResponse:
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        return redirect(f"/marketing/campaigns/{campaign.id}?notice=not_draft")
    return _render_form(request, principal, session, campaign, _form_values(campaign))


@router.post("/marketing/campaigns/{campaign_id}/edit", response_model=None, dependencies=Csrf)
def update_campaign(
    request: Request, campaign_id: str, principal: Writer, session: Db, values: FormValues
) -> HTMLResponse | RedirectResponse:
    try:
        campaign = service.update_campaign(
            session, principal.org_id, campaign_id, _campaign_in(values)
        )
    except ValidationFailed as exc:
        campaign = service.get_campaign(session, principal.org_id, campaign_id)
        errors = _field_errors(exc)
        return _render_form(request, principal, session, campaign, values, errors, 422)
    return redirect(f"/marketing/campaigns/{campaign.id}?notice=saved")


@router.post("/marketing/audience-count.json", dependencies=Csrf)
def audience_count(
    principal: Reader,
    session: Db,
    audience_type: Annotated[str, Form()] = "ALL",
    statuses: Annotated[list[str] | None, Form()] = None,
    audience_campaign: Annotated[str, Form(max_length=100)] = "",
) -> JSONResponse:
    """The form's live count of eligible recipients (changes nothing)."""
    kind = audience_type if audience_type in ("STATUS", *ENGAGEMENT_AUDIENCES) else "ALL"
    audience = AudienceIn(
        type=kind,
        statuses=(statuses or []) if kind == "STATUS" else None,
        campaign_id=audience_campaign if kind in ENGAGEMENT_AUDIENCES else None,
    )
    try:
        recipients = service.count_audience(session, principal.org_id, audience)
    except (ValidationFailed, Conflict) as exc:
        return JSONResponse({"recipients": 0, "message": exc.message})
    return JSONResponse({"recipients": recipients, "message": ""})
