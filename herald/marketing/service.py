"""Campaign rules: what a valid campaign is, that only a DRAFT changes, duplicates, stats,
the email log and resends. Launching lives in herald.marketing.launch."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.crm import fields as crm_fields
from herald.crm.service import list_statuses
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.mail import merge
from herald.mail.compose import compile_bodies
from herald.marketing.audience import ENGAGEMENT_AUDIENCES, count_eligible
from herald.marketing.counters import add_to_counters
from herald.marketing.models import Campaign, CampaignStatus, MarketingSend, SendStatus
from herald.marketing.repository import (
    CampaignRepository,
    SendRepository,
    all_orgs_newest_first,
    campaign_in_any_org,
    count_all_orgs,
)
from herald.marketing.schemas import AudienceIn, CampaignIn, CampaignPatchIn
from herald.tenancy import parse_id
from herald.text import storable_problem

MAX_NAME_LENGTH = 200
MAX_FROM_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 320
MAX_SUBJECT_LENGTH = 998
MAX_BODY_BYTES = 1024 * 1024  # each of htmlBody and textBody, UTF-8 encoded
COPY_SUFFIX = " (copy)"
RESENDABLE = (SendStatus.FAILED.value, SendStatus.UNKNOWN.value)

# C0 controls and DEL in one-line fields: CR/LF would reach the mail headers, NUL breaks storage.
_LINE_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")

T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


def _not_draft(action: str) -> Conflict:
    return Conflict(f"Only a DRAFT campaign can be {action}.", code="not_draft")


# --- field rules: each takes the raw input and returns what is stored, or raises a 422 ---


def _storable(value: str, field: str) -> None:
    """No NUL (PostgreSQL text refuses it) and no lone surrogates (not encodable as UTF-8)."""
    if problem := storable_problem(value):
        raise ValidationFailed(f"{field} {problem}.", field=field)


def _line(value: str | None, field: str, max_length: int, *, required: bool = False) -> str:
    """A one-line text, trimmed: no line breaks or other control characters, even at the ends."""
    raw = value or ""
    _storable(raw, field)
    if _LINE_UNSAFE.search(raw):
        raise ValidationFailed(
            f"{field} must be one line: no line breaks or other control characters.", field=field
        )
    text = raw.strip()
    if required and not text:
        raise ValidationFailed(f"{field} is required.", field=field)
    if len(text) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters.", field=field)
    return text


def _from_email(value: str | None) -> str:
    """A valid address, or empty for the org's default sender. Syntax only: no DNS lookup."""
    email = _line(value, "fromEmail", MAX_EMAIL_LENGTH)
    if email:
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValidationFailed(
                f"fromEmail is not a valid address: {exc}", field="fromEmail"
            ) from None
    return email


def _subject(value: str | None) -> str:
    subject = _line(value, "subject", MAX_SUBJECT_LENGTH, required=True)
    merge.validate(subject, "subject", allow_links=False)
    return subject


def _body(value: str | None, field: str) -> str:
    body = value or ""
    _storable(body, field)
    if len(body.encode("utf-8")) > MAX_BODY_BYTES:
        raise ValidationFailed(f"{field} must be at most {MAX_BODY_BYTES // 1024} KB.", field=field)
    merge.validate(body, field)
    return body


def _audience(
    session: Session,
    org_id: uuid.UUID,
    audience: AudienceIn | None,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audience as stored; statuses matched case-insensitively, kept as the org spells them.

    An engagement audience is made by a duplicate of a SENT campaign: here it is taken only
    as the campaign's ``current`` one, sent back unchanged (a GET, then a PUT).
    """
    if audience is None:
        raise ValidationFailed("audience cannot be null.", field="audience")
    if audience.type == "ALL":
        return {"type": "ALL"}
    if audience.type in ENGAGEMENT_AUDIENCES:
        asked = {"type": audience.type, "campaignId": audience.campaign_id}
        if current is not None and asked == current:
            return dict(current)
        raise ValidationFailed(
            f"A {audience.type} audience is made by duplicating a SENT campaign "
            f'(POST /api/marketing/campaigns/{{id}}/duplicate with {{"audience": '
            f'"{audience.type}"}}), not set by hand.',
            field="audience.type",
        )
    field = "audience.statuses"
    if not audience.statuses:
        raise ValidationFailed("A STATUS audience needs at least one contact status.", field=field)
    known = {name.upper(): name for name in list_statuses(session, org_id)}
    chosen: list[str] = []
    for wanted in audience.statuses:
        name = known.get(wanted.strip().upper())
        if name is None:
            shown = wanted if len(wanted) <= 50 else wanted[:50] + "..."
            raise ValidationFailed(
                f"Status {shown!r} is not one of this org's contact statuses: "
                f"{', '.join(known.values())}.",
                field=field,
            )
        if name not in chosen:
            chosen.append(name)
    return {"type": "STATUS", "statuses": chosen}


def _flag(value: bool | None, field: str) -> bool:
    if value is None:
        raise ValidationFailed(f"{field} must be true or false.", field=field)
    return value


def _cleaned(
    session: Session, org_id: uuid.UUID, name: str, value: Any, current: Campaign | None
) -> Any:
    """The stored value of one input field (by its Python name)."""
    if name == "name":
        return _line(value, "name", MAX_NAME_LENGTH, required=True)
    if name == "from_name":
        return _line(value, "fromName", MAX_FROM_NAME_LENGTH)
    if name == "from_email":
        return _from_email(value)
    if name == "subject":
        return _subject(value)
    if name == "html_body":
        return _body(value, "htmlBody")
    if name == "text_body":
        return _body(value, "textBody")
    if name == "audience":
        return _audience(session, org_id, value, current.audience if current else None)
    if name == "track_opens":
        return _flag(value, "trackOpens")
    if name == "track_clicks":
        return _flag(value, "trackClicks")
    raise AssertionError(f"no rule for campaign field {name}")


FIELDS = (
    "name",
    "from_name",
    "from_email",
    "subject",
    "html_body",
    "text_body",
    "audience",
    "track_opens",
    "track_clicks",
)


@dataclass(frozen=True)
class CampaignChanges:
    """The stored values of the fields sent, all checked: applying them cannot fail, so a
    refused edit leaves the campaign (and the session) untouched."""

    values: dict[str, Any]

    def apply_to(self, campaign: Campaign) -> None:
        for name, value in self.values.items():
            setattr(campaign, name, value)


def _validated(
    session: Session,
    org_id: uuid.UUID,
    data: CampaignIn | CampaignPatchIn,
    current: Campaign | None = None,
) -> CampaignChanges:
    """The fields of ``data`` that were sent (every one, for a CampaignIn), checked against
    the rules; ``current`` gives the fields a PATCH leaves as they are."""
    sent = data.model_fields_set if isinstance(data, CampaignPatchIn) else set(FIELDS)
    values = {
        name: _cleaned(session, org_id, name, getattr(data, name), current)
        for name in FIELDS
        if name in sent
    }
    if sent & {"html_body", "text_body"}:
        html = values.get("html_body", current.html_body if current else "")
        text = values.get("text_body", current.text_body if current else "")
        # The message the workers will build, checked now rather than at launch: catches
        # placeholders that only appear once HTML entities are decoded, or in generated text.
        compile_bodies(html or "", text or "")
    return CampaignChanges(values)


# --- campaigns ---


def list_campaigns(
    session: Session,
    org_id: uuid.UUID,
    *,
    status: CampaignStatus | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Listing[Campaign]:
    repo = CampaignRepository(session, org_id)
    stmt = repo.newest_first(status.value if status else None)
    return Listing(repo.page(stmt, page, page_size), repo.count(stmt), page, page_size)


def get_campaign(session: Session, org_id: uuid.UUID, campaign_id: str) -> Campaign:
    return CampaignRepository(session, org_id).get(campaign_id)


def get_campaign_in_any_org(session: Session, campaign_id: str) -> Campaign:
    """For the operator CLI (database access, no org): 422 for a malformed id, 404 unknown."""
    parsed = parse_id(campaign_id)
    if parsed is None:
        shown = campaign_id if len(campaign_id) <= 50 else campaign_id[:50] + "..."
        raise ValidationFailed(
            f"{shown!r} is not a campaign id (a UUID such as "
            "3f2b8c1e-6d4a-4e0b-9a7c-2d5e8f1a0b3c).",
            field="campaignId",
        )
    campaign = campaign_in_any_org(session, parsed)
    if campaign is None:
        raise NotFound("Campaign not found.")
    return campaign


def list_campaigns_in_all_orgs(
    session: Session,
    *,
    status: CampaignStatus | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Listing[tuple[Campaign, str]]:
    """For the operator CLI: every org's campaigns, newest first, each with its org's name."""
    value = status.value if status else None
    stmt = all_orgs_newest_first(value).offset((page - 1) * page_size).limit(page_size)
    rows = [(campaign, name) for campaign, name in session.execute(stmt)]
    return Listing(rows, count_all_orgs(session, value), page, page_size)


def create_campaign(session: Session, org_id: uuid.UUID, data: CampaignIn) -> Campaign:
    changes = _validated(session, org_id, data)
    campaign = Campaign(status=CampaignStatus.DRAFT.value)
    changes.apply_to(campaign)
    return CampaignRepository(session, org_id).add(campaign)


def _draft_for_update(
    session: Session, org_id: uuid.UUID, campaign_id: str, action: str
) -> Campaign:
    """The campaign, row-locked (PostgreSQL) so that a launch cannot slip in; 409 unless DRAFT."""
    campaign = CampaignRepository(session, org_id).get_for_update(campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise _not_draft(action)
    return campaign


def update_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, data: CampaignIn | CampaignPatchIn
) -> Campaign:
    """PATCH (a CampaignPatchIn: the fields sent) or PUT (a CampaignIn: every field)."""
    campaign = _draft_for_update(session, org_id, campaign_id, "edited")
    _validated(session, org_id, data, campaign).apply_to(campaign)
    session.flush()
    return campaign


def delete_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
) -> None:
    campaign = _draft_for_update(session, org_id, campaign_id, "deleted")
    audit.record(
        session, actor, "campaign.deleted", target=f"campaign {campaign.id} {campaign.name}"
    )
    CampaignRepository(session, org_id).delete(campaign)


def duplicate_campaign(
    session: Session, org_id: uuid.UUID, campaign_id: str, audience: str | None = None
) -> Campaign:
    """A new DRAFT with the content of any campaign, whatever its status, and zero counts.

    ``audience`` NOT_OPENED / NOT_CLICKED: the copy goes to the source's non-openers or
    non-clickers instead (evaluated at its launch); 409 unless the source is SENT.
    """
    source = CampaignRepository(session, org_id).get(campaign_id)
    copied = dict(source.audience)
    if audience is not None:
        copied = _engagement_audience(source, audience)
    name = source.name[: MAX_NAME_LENGTH - len(COPY_SUFFIX)] + COPY_SUFFIX
    copy = Campaign(
        name=name,
        from_name=source.from_name,
        from_email=source.from_email,
        subject=source.subject,
        html_body=source.html_body,
        text_body=source.text_body,
        audience=copied,
        track_opens=source.track_opens,
        track_clicks=source.track_clicks,
        status=CampaignStatus.DRAFT.value,
    )
    return CampaignRepository(session, org_id).add(copy)


def _engagement_audience(source: Campaign, kind: str) -> dict[str, Any]:
    if kind not in ENGAGEMENT_AUDIENCES:
        raise ValidationFailed(
            f"audience must be one of {', '.join(ENGAGEMENT_AUDIENCES)}.", field="audience"
        )
    if source.status != CampaignStatus.SENT.value:
        raise Conflict(
            f"Only a SENT campaign has non-openers and non-clickers; this one is {source.status}.",
            code="not_sent",
            details={"status": source.status},
        )
    return {"type": kind, "campaignId": str(source.id)}


def count_audience(session: Session, org_id: uuid.UUID, audience: AudienceIn) -> int:
    """How many contacts a launch to ``audience`` would mail now. An engagement audience
    names a SENT campaign of the org."""
    if audience.type in ENGAGEMENT_AUDIENCES:
        try:
            source = CampaignRepository(session, org_id).get(audience.campaign_id or "")
        except NotFound:
            raise ValidationFailed(
                "audience.campaignId must name one of this org's campaigns.",
                field="audience.campaignId",
            ) from None
        return count_eligible(session, org_id, _engagement_audience(source, audience.type))
    return count_eligible(session, org_id, _audience(session, org_id, audience))


# --- sends: the email log and resends ---


def list_sends(
    session: Session,
    org_id: uuid.UUID,
    campaign_id: str,
    *,
    status: SendStatus | None = None,
    query: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Listing[MarketingSend]:
    """The email log. Its total is exact: without a search it comes from the campaign's
    counters (moved in the same transactions as the sends' statuses), so a million-send
    campaign costs no COUNT; a search counts its matches, once it fills a page."""
    campaign = CampaignRepository(session, org_id).get(campaign_id)
    repo = SendRepository(session, org_id)
    chosen = status.value if status else None
    cleaned = crm_fields.clean_query(query)
    if cleaned is None:
        total = _sends_in_status(repo, campaign, status)
        items = repo.log_page(
            campaign.id, chosen, None, page=page, page_size=page_size, total=total
        )
        return Listing(items, total, page, page_size)
    items = repo.log_page(campaign.id, chosen, cleaned, page=page, page_size=page_size)
    if page == 1 and len(items) < page_size:
        return Listing(items, len(items), page, page_size)  # every match is on this page
    return Listing(items, repo.count(repo.log(campaign.id, chosen, cleaned)), page, page_size)


def with_contact_links(
    session: Session, org_id: uuid.UUID, sends: list[MarketingSend]
) -> list[MarketingSend]:
    """For callers that show ``contact_id``: None where the contact has been deleted."""
    return SendRepository(session, org_id).without_deleted_contacts(sends)


def _sends_in_status(repo: SendRepository, campaign: Campaign, status: SendStatus | None) -> int:
    """How many sends the campaign has (in ``status``), from its counters.

    QUEUED and SENDING share the ``pending`` counter: the few sends in flight are counted.
    """
    if status is None:
        return campaign.recipients
    if status is SendStatus.DELIVERED:
        return campaign.delivered
    if status is SendStatus.FAILED:
        return campaign.failed - campaign.bounced  # failed counts the bounced too
    if status is SendStatus.BOUNCED:
        return campaign.bounced
    if status is SendStatus.UNKNOWN:
        return campaign.unknown
    if status is SendStatus.CANCELLED:
        return campaign.cancelled
    in_flight = repo.count_in_status(campaign.id, SendStatus.SENDING.value)
    if status is SendStatus.SENDING:
        return in_flight
    return max(campaign.pending - in_flight, 0)


def resend(session: Session, org_id: uuid.UUID, send_id: str) -> MarketingSend:
    """A FAILED or UNKNOWN send goes back to the queue, due now; 409 for any other status,
    and in a cancelled campaign.

    Its campaign's failed or unknown counter gives it back; a SENT campaign stays SENT
    and its counts follow the new outcome; in a PAUSED one it waits for the resume.
    """
    repo = SendRepository(session, org_id)
    send = repo.get(send_id)
    campaign = CampaignRepository(session, org_id).get(send.campaign_id)
    if campaign.status == CampaignStatus.CANCELLED.value:
        raise Conflict(
            "The campaign was cancelled: its sends are not sent again. Duplicate it instead.",
            code="campaign_cancelled",
            details={"status": send.status},
        )
    previous = send.status
    if previous in RESENDABLE and repo.requeue(send, previous):
        add_to_counters(session, send.campaign_id, Counter({previous.lower(): -1}))
        return repo.without_deleted_contacts([send])[0]
    session.refresh(send)
    raise Conflict(
        f"Only a FAILED or UNKNOWN send can be resent; this one is {send.status}.",
        code="not_resendable",
        details={"status": send.status},
    )
