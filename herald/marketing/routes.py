"""The Marketing API. Every route needs the `marketing` licence and ADMIN or MANAGER; writes
(every POST, PUT, PATCH and DELETE) need ADMIN."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from herald.audit import service as audit
from herald.auth.access import Capability, allows
from herald.auth.deps import MARKETING_READ, MARKETING_WRITE, Principal
from herald.marketing import control, export, links, preview, service
from herald.marketing.launch import launch_campaign
from herald.marketing.models import CampaignStatus, SendStatus
from herald.marketing.schemas import (
    AudienceCountIn,
    AudienceCountOut,
    CampaignIn,
    CampaignOut,
    CampaignPatchIn,
    DuplicateIn,
    LaunchOut,
    LinkOut,
    LinksOut,
    ScheduleIn,
    SendOut,
    StatsOut,
    TestSendIn,
    TestSendOut,
)
from herald.openapi import BODY, INPUT, NOT_FOUND, csv_response, error_responses
from herald.runtime import get_runtime, get_session, get_settings_dep
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ApiModel, Page
from herald.settings import Settings

MAX_PAGE = 1_000_000_000
router = APIRouter(
    prefix="/api/marketing",
    tags=["marketing"],
    responses=error_responses(
        401,
        403,
        notes={
            403: "The organisation's licence lacks `marketing` (`feature_required`), or the "
            "caller is not ADMIN or MANAGER, or not ADMIN for a write (`role_required`)."
        },
    ),
)
NOT_DRAFT = error_responses(409, notes={409: "The campaign is not a DRAFT (`not_draft`)."})


class AccessOut(ApiModel):
    feature: str
    role: str
    can_write: bool


@router.get("/access", response_model=AccessOut, response_model_by_alias=True)
def access(principal: Principal = Depends(MARKETING_READ)) -> AccessOut:
    """What the caller may do in the Marketing module (the pages use it for their buttons)."""
    return AccessOut(
        feature="marketing",
        role=principal.role.value,
        can_write=allows(principal, Capability.MARKETING_WRITE),
    )


# --- campaigns ---


@router.get("/campaigns", response_model=Page[CampaignOut], responses=INPUT)
def list_campaigns(
    status: CampaignStatus | None = Query(None, description="Only campaigns with this status."),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> Page[CampaignOut]:
    """Newest first: createdAt, then id, descending."""
    found = service.list_campaigns(
        session, principal.org_id, status=status, page=page, page_size=page_size
    )
    return Page(
        items=[CampaignOut.model_validate(c) for c in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.post(
    "/campaigns",
    status_code=201,
    response_model=CampaignOut,
    responses=error_responses(
        413,
        422,
        notes={
            422: "Invalid input, with the field named: e.g. a missing name or subject, an "
            "invalid fromEmail, CR or LF in a header field, an unknown `{{placeholder}}`."
        },
    ),
)
def create_campaign(
    body: CampaignIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """A new DRAFT. `name` and `subject` are required; `fromEmail` left out: the org's
    default sender at launch. Placeholders: `{{firstName}}`, `{{lastName}}`,
    `{{companyName}}`, `{{email}}`, with a fallback as in `{{firstName|there}}`."""
    return CampaignOut.model_validate(service.create_campaign(session, principal.org_id, body))


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, responses=NOT_FOUND)
def get_campaign(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """One campaign with its counts; another organisation's id is a 404."""
    return CampaignOut.model_validate(service.get_campaign(session, principal.org_id, campaign_id))


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **NOT_DRAFT, **BODY},
)
def patch_campaign(
    campaign_id: str,
    body: CampaignPatchIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """Only the fields sent change; 409 `not_draft` unless the campaign is a DRAFT."""
    campaign = service.update_campaign(session, principal.org_id, campaign_id, body)
    return CampaignOut.model_validate(campaign)


@router.put(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **NOT_DRAFT, **BODY},
)
def replace_campaign(
    campaign_id: str,
    body: CampaignIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """Every field is replaced (left out: its default); 409 `not_draft` unless a DRAFT."""
    campaign = service.update_campaign(session, principal.org_id, campaign_id, body)
    return CampaignOut.model_validate(campaign)


@router.delete(
    "/campaigns/{campaign_id}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **NOT_DRAFT},
)
def delete_campaign(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> Response:
    """Deletes a DRAFT; 204, no body. 409 `not_draft` for any other status."""
    service.delete_campaign(session, principal.org_id, campaign_id, actor=audit.actor(principal))
    return Response(status_code=204)


@router.post(
    "/campaigns/{campaign_id}/launch",
    status_code=202,
    response_model=LaunchOut,
    responses={
        **NOT_FOUND,
        **error_responses(
            409,
            notes={
                409: "The campaign is not a DRAFT (`not_draft`), or the launch failed and "
                "the campaign is now FAILED with the reason (`smtp_not_configured`, "
                "`sender_missing`)."
            },
        ),
    },
)
def launch(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> LaunchOut:
    """DRAFT -> SENDING (SENT at once when nobody is eligible). 409 `not_draft`; 409
    `smtp_not_configured` / `sender_missing` leave the campaign FAILED with the reason."""
    campaign = launch_campaign(session, principal.org_id, campaign_id, actor=audit.actor(principal))
    return LaunchOut(status=campaign.status, recipients=campaign.recipients)


# --- sending control: schedule, pause, resume, cancel


def _not_in(*statuses: str) -> dict[int | str, dict[str, object]]:
    names = " or ".join(statuses)
    return error_responses(409, notes={409: f"The campaign is not {names} (`not_...`)."})


@router.post(
    "/campaigns/{campaign_id}/schedule",
    response_model=CampaignOut,
    responses={
        **NOT_FOUND,
        **BODY,
        **_not_in("DRAFT"),
        **error_responses(
            422,
            notes={
                422: "`at` is not in the future or more than a year ahead (field `at`), "
                "or a launch would fail: SMTP not configured (`smtp_not_configured`), no "
                "sender address (`sender_missing`)."
            },
        ),
    },
)
def schedule(
    campaign_id: str,
    body: ScheduleIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """DRAFT -> SCHEDULED: a worker launches it within seconds of `at` (ISO 8601; UTC
    when it carries no offset), deciding who is eligible then. A campaign Herald finds more
    than `HERALD_SCHEDULE_GRACE_SECONDS` late (it was not running) goes back to DRAFT with
    `failureReason` saying so."""
    campaign = control.schedule_campaign(
        session, principal.org_id, campaign_id, body.at, actor=audit.actor(principal)
    )
    return CampaignOut.model_validate(campaign)


@router.post(
    "/campaigns/{campaign_id}/unschedule",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **_not_in("SCHEDULED")},
)
def unschedule(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """SCHEDULED -> DRAFT (editable again)."""
    campaign = control.unschedule_campaign(
        session, principal.org_id, campaign_id, actor=audit.actor(principal)
    )
    return CampaignOut.model_validate(campaign)


@router.post(
    "/campaigns/{campaign_id}/pause",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **_not_in("SENDING")},
)
def pause(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """SENDING -> PAUSED. Once this has answered no new message of the campaign starts;
    the few already in flight (at most 100 per worker) complete."""
    campaign = control.pause_campaign(
        session, principal.org_id, campaign_id, actor=audit.actor(principal)
    )
    return CampaignOut.model_validate(campaign)


@router.post(
    "/campaigns/{campaign_id}/resume",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **_not_in("PAUSED")},
)
def resume(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """PAUSED -> SENDING: the sends still queued go out, one message per contact (SENT at
    once when none is left)."""
    campaign = control.resume_campaign(
        session, principal.org_id, campaign_id, actor=audit.actor(principal)
    )
    return CampaignOut.model_validate(campaign)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **_not_in("SCHEDULED", "SENDING", "PAUSED")},
)
def cancel(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """SCHEDULED, SENDING or PAUSED -> CANCELLED, for good: the queued sends become
    CANCELLED (counted in `cancelled`) and are never sent; those in flight complete.
    Duplicate it to send it again."""
    campaign = control.cancel_campaign(
        session, principal.org_id, campaign_id, actor=audit.actor(principal)
    )
    return CampaignOut.model_validate(campaign)


@router.post(
    "/campaigns/{campaign_id}/duplicate",
    status_code=201,
    response_model=CampaignOut,
    responses={
        **NOT_FOUND,
        **BODY,
        **error_responses(
            409,
            notes={
                409: "An engagement audience was asked of a campaign that is not SENT (`not_sent`)."
            },
        ),
    },
)
def duplicate_campaign(
    campaign_id: str,
    body: DuplicateIn | None = None,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> CampaignOut:
    """A new DRAFT from any campaign: same sender, subject, bodies, audience and tracking
    settings, the name suffixed " (copy)", zero counts. With `{"audience": "NOT_OPENED"}`
    (or `"NOT_CLICKED"`) the copy goes instead to the contacts the source (SENT) was
    delivered to who have no human open (click) of it, evaluated at its launch."""
    audience = body.audience if body else None
    copy = service.duplicate_campaign(session, principal.org_id, campaign_id, audience)
    return CampaignOut.model_validate(copy)


def _prepare_test(
    session: Session, settings: Settings, principal: Principal, campaign_id: str, body: TestSendIn
) -> preview.CampaignTest:
    test = preview.prepare_test_send(session, settings, principal.org_id, campaign_id, body.to)
    # Nothing to write: end the transaction (on SQLite the write lock a POST starts with)
    # before a slow SMTP server takes its time.
    session.rollback()
    return test


@router.post(
    "/campaigns/{campaign_id}/test",
    response_model=TestSendOut,
    response_model_by_alias=True,
    responses={
        **BODY,
        **NOT_FOUND,
        **error_responses(
            409,
            422,
            429,
            notes={
                409: "Email is not configured yet (`smtp_not_configured`), or the stored "
                "password cannot be decrypted (`smtp_password_unreadable`).",
                422: "A bad address in `to` (at most 5), an unusable sender (`fromEmail`), or "
                "a host that now resolves to a refused address (`smtp_host_not_allowed`).",
                429: "More test messages than the org may send per minute (`rate_limited`).",
            },
        ),
    },
)
async def send_test(
    campaign_id: str,
    body: TestSendIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TestSendOut:
    """Sends the campaign as its first eligible contact would get it, subject prefixed
    "[Test] ", to each address of `to`; answers the SMTP server's reply per address (`ok`
    false with the reason when it refused or could not be reached). Counted nowhere."""
    test = await run_in_threadpool(_prepare_test, session, settings, principal, campaign_id, body)
    answers = await preview.send_test(test)
    return TestSendOut.model_validate({"results": [vars(a) for a in answers]})


@router.get("/campaigns/{campaign_id}/stats", response_model=StatsOut, responses=NOT_FOUND)
def campaign_stats(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> StatsOut:
    """From the campaign's counters; openRate = opens / delivered, humanOpenRate =
    humanOpens / delivered, clickRate = clicks / delivered (0 when none delivered).
    `failed` counts FAILED and BOUNCED sends (a bounce moves a send from delivered to
    failed), `bounced` the BOUNCED ones, `complaints` the sends marked as spam.
    `opens` = humanOpens + machineOpens (a send with a human open or click is human);
    `clicks`: sends with a human click, `machineClicks`: sends whose clicks were all
    machine ones; `unsubscribes`: sends whose unsubscribe link was used."""
    return StatsOut.model_validate(service.get_campaign(session, principal.org_id, campaign_id))


@router.get("/campaigns/{campaign_id}/links", response_model=LinksOut, responses=NOT_FOUND)
def campaign_links(
    campaign_id: str,
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> LinksOut:
    """One row per tracked link of the body, in order, `url` as written (placeholders
    unmerged): `clicks` human hits, `uniqueClicks` sends with a human hit, `machineClicks`
    machine hits. Empty without `trackClicks`; a DRAFT's links at zero."""
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    rows = links.campaign_links(session, campaign)
    return LinksOut(items=[LinkOut.model_validate(row) for row in rows])


@router.post("/audience/count", response_model=AudienceCountOut, responses=BODY)
def audience_count(
    body: AudienceCountIn,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> AudienceCountOut:
    """The campaign form's live count: `{"audience": {...}}` -> `{"recipients": N}`, how many
    contacts a launch to that audience would mail now. Changes nothing, but it is a POST
    (the audience is in the body), so like every Marketing POST it is ADMIN-only: only
    ADMINs edit the form."""
    return AudienceCountOut(
        recipients=service.count_audience(session, principal.org_id, body.audience)
    )


# --- sends: the email log, its CSV, resends ---


@router.get(
    "/campaigns/{campaign_id}/sends",
    response_model=Page[SendOut],
    responses={**NOT_FOUND, **INPUT},
)
def list_sends(
    campaign_id: str,
    status: SendStatus | None = Query(None, description="Only sends with this status."),
    q: str | None = Query(None, description="Part of the email, first or last name."),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> Page[SendOut]:
    """The email log, by send id."""
    found = service.list_sends(
        session,
        principal.org_id,
        campaign_id,
        status=status,
        query=q,
        page=page,
        page_size=page_size,
    )
    sends = service.with_contact_links(session, principal.org_id, found.items)
    return Page(
        items=[SendOut.model_validate(s) for s in sends],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.get(
    "/campaigns/{campaign_id}/sends.csv",
    response_class=StreamingResponse,
    responses={
        **csv_response(
            "A CSV attachment, one row per send: "
            "`email,firstName,lastName,status,deliveredAt,openedAt,error,bounceType,bouncedAt,"
            "complainedAt,clickedAt,machine`."
        ),
        **NOT_FOUND,
    },
)
def export_sends(
    campaign_id: str,
    request: Request,
    principal: Principal = Depends(MARKETING_READ),
    session: Session = Depends(get_session, scope="function"),
) -> StreamingResponse:
    """One row per send, streamed; cells that a spreadsheet would run as formulas are
    prefixed with an apostrophe. The request's session ends before the stream starts (it is
    function-scoped); the stream reads in short sessions of its own."""
    campaign = service.get_campaign(session, principal.org_id, campaign_id)
    filename = export.attachment_name(campaign.name)
    chunks = export.csv_chunks(get_runtime(request).sessions, principal.org_id, campaign.id)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post(
    "/sends/{send_id}/resend",
    status_code=202,
    response_model=SendOut,
    responses={
        **NOT_FOUND,
        **error_responses(
            409, notes={409: "The send is neither FAILED nor UNKNOWN (`not_resendable`)."}
        ),
    },
)
def resend(
    send_id: str,
    principal: Principal = Depends(MARKETING_WRITE),
    session: Session = Depends(get_session, scope="function"),
) -> SendOut:
    """A FAILED or UNKNOWN send back to the queue (202, the send now QUEUED); 409 otherwise."""
    return SendOut.model_validate(service.resend(session, principal.org_id, send_id))
