"""The Marketing pages: campaign list, detail (KPIs, live progress, sandboxed preview,
send test, opens and clicks over time, links, follow-ups) and email log, plus the small JSON
endpoints their scripts poll. The campaign form is herald.marketing.campaign_form.

Thin: each handler reads the form, calls the service and renders; the rules and the queries
live in herald.marketing.service / launch / preview / charts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.errors import Conflict, HeraldError, ValidationFailed
from herald.mail.testsend import SmtpFailed
from herald.marketing import charts, control, export, links, preview, service
from herald.marketing.audience import ENGAGEMENT_AUDIENCES, count_eligible
from herald.marketing.classify import REASON_TEXT
from herald.marketing.launch import launch_campaign
from herald.marketing.models import Campaign, CampaignStatus, SendStatus
from herald.runtime import get_runtime, get_session, get_settings_dep
from herald.settings import Settings
from herald.web.csrf import verify_csrf
from herald.web.deps import page_requires
from herald.web.pages import redirect, render

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(page_requires(Capability.MARKETING_READ))]
Writer = Annotated[Principal, Depends(page_requires(Capability.MARKETING_WRITE))]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Csrf = [Depends(verify_csrf)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]

CAMPAIGNS_PER_PAGE = 20
SENDS_PER_PAGE = 50
READ_ONLY_REASON = "Only an ADMIN can change campaigns."

# Messages shown after a redirect, by key: the query string never carries text to show.
NOTICES = {
    "created": ("ok", "Campaign saved as a draft."),
    "saved": ("ok", "Changes saved."),
    "launched": ("ok", "Campaign launched: sending has started."),
    "duplicated": ("ok", "This is a new draft copied from the campaign."),
    "duplicated_not_opened": (
        "ok",
        "This is a new draft for the contacts who did not open the campaign; who they are is "
        "decided again at launch.",
    ),
    "duplicated_not_clicked": (
        "ok",
        "This is a new draft for the contacts who did not click in the campaign; who they are "
        "is decided again at launch.",
    ),
    "not_sent": ("error", "Only a SENT campaign can be copied to its non-openers or non-clickers."),
    "deleted": ("ok", "Campaign deleted."),
    "resent": ("ok", "The send is queued again."),
    "scheduled": ("ok", "Campaign scheduled: it will be sent at the time shown."),
    "unscheduled": ("ok", "The schedule is removed: the campaign is a draft again."),
    "paused": ("ok", "Sending is paused: no new message starts until you resume."),
    "resumed": ("ok", "Sending resumed."),
    "cancelled": ("ok", "Campaign cancelled: the messages not yet sent will never be sent."),
    "not_draft": ("error", "Only a DRAFT campaign can be edited, launched or deleted."),
    "not_resendable": ("error", "Only a FAILED or UNKNOWN send can be resent."),
    "status_moved": ("error", "The campaign's status changed meanwhile; see it as it is now."),
}

FOLLOW_UPS = (
    ("NOT_OPENED", "Duplicate to non-openers", "did not open it"),
    ("NOT_CLICKED", "Duplicate to non-clickers", "did not click in it"),
)


def _notice(key: str | None) -> tuple[str, str] | None:
    return NOTICES.get(key or "")


def _pages(total: int, page_size: int) -> int:
    return max(math.ceil(total / page_size), 1)


def _can_write(principal: Principal) -> bool:
    return allows(principal, Capability.MARKETING_WRITE)


# --- the list ---


@router.get("/marketing", response_class=HTMLResponse)
def campaign_list(
    request: Request, principal: Reader, session: Db, page: PageNumber = 1, notice: str = ""
) -> HTMLResponse:
    found = service.list_campaigns(
        session, principal.org_id, page=page, page_size=CAMPAIGNS_PER_PAGE
    )
    return render(
        request,
        "marketing/list.html",
        principal,
        campaigns=found.items,
        page=found.page,
        pages=_pages(found.total, CAMPAIGNS_PER_PAGE),
        total=found.total,
        can_write=_can_write(principal),
        notice=_notice(notice),
    )


def source_name(session: Session, org_id: Any, audience: dict[str, Any]) -> str:
    """The name of the campaign an engagement audience follows up ("" for other audiences)."""
    if audience.get("type") not in ENGAGEMENT_AUDIENCES:
        return ""
    try:
        return service.get_campaign(session, org_id, str(audience.get("campaignId"))).name
    except HeraldError:
        return "(a campaign no longer found)"


# --- the detail page ---


def _stats(campaign: Campaign, not_sent: int = 0) -> dict[str, Any]:
    done = campaign.delivered + campaign.failed + campaign.unknown
    progress = round(100 * done / campaign.recipients) if campaign.recipients else 0
    return {
        "status": campaign.status,
        "recipients": campaign.recipients,
        "delivered": campaign.delivered,
        "failed": campaign.failed,
        "unknown": campaign.unknown,
        "pending": campaign.pending,
        "opens": campaign.opens,
        "openRate": f"{campaign.open_rate * 100:.1f}%",
        "humanOpens": campaign.human_opens,
        "machineOpens": campaign.machine_opens,
        "humanOpenRate": f"{campaign.human_open_rate * 100:.1f}%",
        "clicks": campaign.clicks,
        "machineClicks": campaign.machine_clicks,
        "clickRate": f"{campaign.click_rate * 100:.1f}%",
        "unsubscribes": campaign.unsubscribes,
        "bounced": campaign.bounced,
        "complaints": campaign.complaints,
        "progress": progress,
        "holdReason": campaign.hold_reason or "",
        "cancelled": campaign.cancelled,
        "pauseReason": campaign.pause_reason or "",
        "notSent": not_sent,
    }


def _render_detail(
    request: Request,
    principal: Principal,
    session: Session,
    campaign: Campaign,
    *,
    notice: tuple[str, str] | None = None,
    test_to: str = "",
    schedule_value: str = "",
    status: int = 200,
) -> HTMLResponse:
    draft = campaign.status == CampaignStatus.DRAFT.value
    org_id = principal.org_id
    not_sent = control.not_sent_if_cancelled(session, org_id, campaign)
    follow_ups = []
    if campaign.status == CampaignStatus.SENT.value:
        for kind, label, who in FOLLOW_UPS:
            audience = {"type": kind, "campaignId": str(campaign.id)}
            follow_ups.append((kind, label, who, count_eligible(session, org_id, audience)))
    return render(
        request,
        "marketing/detail.html",
        principal,
        status=status,
        campaign=campaign,
        stats=_stats(campaign, not_sent),
        not_sent=not_sent,
        relay_wait=control.relay_wait(session, campaign),
        schedule_value=schedule_value,
        can_write=_can_write(principal),
        read_only_reason=READ_ONLY_REASON,
        draft=draft,
        eligible=count_eligible(session, org_id, campaign.audience) if draft else 0,
        audience_source=source_name(session, org_id, campaign.audience),
        follow_ups=follow_ups,
        links=links.campaign_links(session, campaign),
        bars=charts.bars(charts.opens_per_hour(session, org_id, campaign.id)),
        click_bars=charts.bars(charts.clicks_per_hour(session, org_id, campaign.id)),
        chart_width=charts.CHART_WIDTH,
        chart_height=charts.CHART_HEIGHT,
        notice=notice,
        test_to=test_to,
    )


def _refused(
    request: Request,
    principal: Principal,
    session: Session,
    campaign_id: str,
    message: str,
    exc: HeraldError,
    **entered: str,
) -> HTMLResponse:
    """The detail page again with the refusal, its status, and what the form had."""
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    return _render_detail(
        request,
        principal,
        session,
        campaign,
        notice=("error", message),
        status=exc.status,
        **entered,
    )


@router.get("/marketing/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(
    request: Request, campaign_id: str, principal: Reader, session: Db, notice: str = ""
) -> HTMLResponse:
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    return _render_detail(request, principal, session, campaign, notice=_notice(notice))


@router.get("/marketing/campaigns/{campaign_id}/stats.json")
def campaign_stats(campaign_id: str, principal: Reader, session: Db) -> JSONResponse:
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    not_sent = control.not_sent_if_cancelled(session, principal.org_id, campaign)
    return JSONResponse(_stats(campaign, not_sent), headers={"Cache-Control": "no-store"})


@router.get("/marketing/campaigns/{campaign_id}/preview")
def campaign_preview(
    campaign_id: str, principal: Reader, session: Db, settings: AppSettings
) -> HTMLResponse:
    """The email for the sample contact, under a CSP that forbids every script and sandboxes it."""
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    html = preview.preview_html(session, principal.org_id, campaign, settings.base_url)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": preview.PREVIEW_CSP,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@router.post("/marketing/campaigns/{campaign_id}/launch", dependencies=Csrf)
def launch(campaign_id: str, principal: Writer, session: Db) -> RedirectResponse:
    """A failed launch (SMTP not configured...) leaves the campaign FAILED with its reason,
    which the detail page shows; a campaign no longer DRAFT gets a message."""
    try:
        campaign = launch_campaign(
            session, principal.org_id, campaign_id, actor=audit.actor(principal)
        )
    except Conflict as exc:
        if exc.code == "not_draft":
            return redirect(f"/marketing/campaigns/{campaign_id}?notice=not_draft")
        return redirect(f"/marketing/campaigns/{campaign_id}")
    return redirect(f"/marketing/campaigns/{campaign.id}?notice=launched")


@router.post("/marketing/campaigns/{campaign_id}/duplicate", dependencies=Csrf)
def duplicate(
    campaign_id: str,
    principal: Writer,
    session: Db,
    audience: Annotated[str, Form(max_length=20)] = "",
) -> RedirectResponse:
    """Duplicate, or ("Duplicate to non-openers / non-clickers") copy to the campaign's
    non-openers or non-clickers."""
    kind = audience if audience in ENGAGEMENT_AUDIENCES else None
    try:
        copy = service.duplicate_campaign(session, principal.org_id, campaign_id, kind)
    except Conflict:
        return redirect(f"/marketing/campaigns/{campaign_id}?notice=not_sent")
    notice = f"duplicated_{kind.lower()}" if kind else "duplicated"
    return redirect(f"/marketing/campaigns/{copy.id}?notice={notice}")


@router.post("/marketing/campaigns/{campaign_id}/delete", dependencies=Csrf)
def delete(campaign_id: str, principal: Writer, session: Db) -> RedirectResponse:
    try:
        service.delete_campaign(
            session, principal.org_id, campaign_id, actor=audit.actor(principal)
        )
    except Conflict:
        return redirect(f"/marketing/campaigns/{campaign_id}?notice=not_draft")
    return redirect("/marketing?notice=deleted")


@router.post("/marketing/campaigns/{campaign_id}/test", dependencies=Csrf)
def send_test(
    request: Request,
    campaign_id: str,
    principal: Writer,
    session: Db,
    settings: AppSettings,
    to: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    """Send the campaign as the sample contact gets it to one address; show the SMTP answer."""
    address = to.strip()
    try:
        test = preview.prepare_test_send(session, settings, principal.org_id, campaign_id, [to])
        session.rollback()  # nothing to write: hold no transaction while SMTP takes its time
        (answer,) = anyio.from_thread.run(preview.send_test, test)
        if not answer.ok:
            raise SmtpFailed(answer.message, smtp_code=answer.code, smtp_message="")
    except HeraldError as exc:
        refused = f"The test was not sent: {exc.message}"
        return _refused(request, principal, session, campaign_id, refused, exc, test_to=address)
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    reply = f"{answer.code} {answer.message}".strip()
    notice = f"Test sent to {address}. The SMTP server answered: {reply}"
    return _render_detail(
        request, principal, session, campaign, notice=("ok", notice), test_to=address
    )


# --- sending control: schedule, unschedule, pause, resume, cancel


def _schedule_time(at: str, local_at: str) -> dt.datetime | None:
    """The form's time: ``at`` as the page's script converted it (ISO with an offset), or,
    with scripts off, ``local_at`` read as UTC (the form says so then)."""
    for text in (at.strip(), local_at.strip()):
        if text:
            try:
                return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


@router.post("/marketing/campaigns/{campaign_id}/schedule", response_model=None, dependencies=Csrf)
def schedule(
    request: Request,
    campaign_id: str,
    principal: Writer,
    session: Db,
    at: Annotated[str, Form(max_length=64)] = "",
    local_at: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse | RedirectResponse:
    when = _schedule_time(at, local_at)
    try:
        if when is None:
            raise ValidationFailed("Choose a date and time to send it at.", field="at")
        control.schedule_campaign(
            session, principal.org_id, campaign_id, when, actor=audit.actor(principal)
        )
    except ValidationFailed as exc:
        refused = f"Not scheduled: {exc.message}"
        return _refused(
            request, principal, session, campaign_id, refused, exc, schedule_value=local_at
        )
    except Conflict:
        return redirect(f"/marketing/campaigns/{campaign_id}?notice=status_moved")
    return redirect(f"/marketing/campaigns/{campaign_id}?notice=scheduled")


def _control(action: str, done: str) -> None:
    """A page route POSTing one sending-control action, then back to the detail page."""
    change = getattr(control, f"{action}_campaign")

    def handler(campaign_id: str, principal: Writer, session: Db) -> RedirectResponse:
        try:
            change(session, principal.org_id, campaign_id, actor=audit.actor(principal))
        except Conflict:
            return redirect(f"/marketing/campaigns/{campaign_id}?notice=status_moved")
        return redirect(f"/marketing/campaigns/{campaign_id}?notice={done}")

    handler.__name__ = action
    router.post(f"/marketing/campaigns/{{campaign_id}}/{action}", dependencies=Csrf)(handler)


for _action, _done in (
    ("unschedule", "unscheduled"),
    ("pause", "paused"),
    ("resume", "resumed"),
    ("cancel", "cancelled"),
):
    _control(_action, _done)


# --- the email log ---


@router.get("/marketing/campaigns/{campaign_id}/log", response_class=HTMLResponse)
def email_log(
    request: Request,
    campaign_id: str,
    principal: Reader,
    session: Db,
    status: str = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page: PageNumber = 1,
    notice: str = "",
) -> HTMLResponse:
    chosen = SendStatus(status) if status in SendStatus.__members__ else None
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    found = service.list_sends(
        session,
        principal.org_id,
        campaign_id,
        status=chosen,
        query=q or None,
        page=page,
        page_size=SENDS_PER_PAGE,
    )
    return render(
        request,
        "marketing/log.html",
        principal,
        campaign=campaign,
        sends=found.items,
        total=found.total,
        page=found.page,
        pages=_pages(found.total, SENDS_PER_PAGE),
        status_filter=chosen.value if chosen else "",
        q=q,
        send_statuses=[s.value for s in SendStatus],
        resendable=service.RESENDABLE,
        reasons=REASON_TEXT,
        can_write=_can_write(principal),
        read_only_reason=READ_ONLY_REASON,
        notice=_notice(notice),
    )


@router.get("/marketing/campaigns/{campaign_id}/sends.csv")
def export_sends(
    request: Request, campaign_id: str, principal: Reader, session: Db
) -> StreamingResponse:
    """The same CSV as the API's sends.csv, for the page's Download CSV link."""
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    chunks = export.csv_chunks(get_runtime(request).sessions, principal.org_id, campaign.id)
    filename = export.attachment_name(campaign.name)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/marketing/sends/{send_id}/resend", dependencies=Csrf)
def resend(
    send_id: str,
    principal: Writer,
    session: Db,
    back: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    try:
        send = service.resend(session, principal.org_id, send_id)
    except Conflict:
        target, notice = back, "not_resendable"
    else:
        target, notice = f"/marketing/campaigns/{send.campaign_id}/log", "resent"
        if back.startswith(target):
            target = back
    if not target.startswith("/marketing/campaigns/") or "\\" in target:
        target = "/marketing"
    separator = "&" if "?" in target else "?"
    return redirect(f"{target}{separator}notice={notice}")
