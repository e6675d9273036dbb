"""Campaigns, their stats and their sends as the JSON API shows and takes them.

The input models check shapes only; lengths, characters, addresses, placeholders and
statuses are checked by herald.marketing.service, which names the field in its 422.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from herald.schemas import ApiModel


class AudienceIn(ApiModel):
    """``{"type": "ALL"}`` or ``{"type": "STATUS", "statuses": [...]}`` (at least one).
    ``{"type": "NOT_OPENED" | "NOT_CLICKED", "campaignId": ID}`` is made only by duplicating
    a SENT campaign; a PUT or PATCH may send it back unchanged."""

    type: Literal["ALL", "STATUS", "NOT_OPENED", "NOT_CLICKED"]
    statuses: list[str] | None = None
    campaign_id: str | None = None


def _everyone() -> AudienceIn:
    return AudienceIn(type="ALL")


class CampaignIn(ApiModel):
    """POST and PUT: the whole campaign; what is left out gets its default."""

    name: str
    from_name: str | None = None
    from_email: str | None = None
    subject: str
    html_body: str | None = None
    text_body: str | None = None
    audience: AudienceIn = Field(default_factory=_everyone)
    track_opens: bool = True
    track_clicks: bool = True


class CampaignPatchIn(ApiModel):
    """PATCH: only the fields sent change."""

    name: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    subject: str | None = None
    html_body: str | None = None
    text_body: str | None = None
    audience: AudienceIn | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None


class DuplicateIn(ApiModel):
    """Optional body of a duplicate: the copy goes to the source's non-openers or
    non-clickers (the source must be SENT)."""

    audience: Literal["NOT_OPENED", "NOT_CLICKED"] | None = None


class CampaignOut(ApiModel):
    id: uuid.UUID
    name: str
    from_name: str
    from_email: str
    subject: str
    html_body: str
    text_body: str
    audience: dict[str, Any]
    status: str
    recipients: int
    delivered: int
    failed: int
    unknown: int
    pending: int
    opens: int
    open_rate: float
    bounced: int
    complaints: int
    created_at: dt.datetime
    updated_at: dt.datetime
    launched_at: dt.datetime | None
    completed_at: dt.datetime | None
    failure_reason: str | None
    hold_reason: str | None
    track_opens: bool
    track_clicks: bool
    # sending control (issue #16)
    cancelled: int
    scheduled_at: dt.datetime | None
    paused_at: dt.datetime | None
    pause_reason: str | None


class ScheduleIn(ApiModel):
    """``at``: when to launch, ISO 8601 (UTC when it carries no offset)."""

    at: dt.datetime


class LaunchOut(ApiModel):
    status: str
    recipients: int


class StatsOut(ApiModel):
    status: str
    recipients: int
    delivered: int
    failed: int
    unknown: int
    pending: int
    cancelled: int
    opens: int
    open_rate: float
    bounced: int
    complaints: int
    human_opens: int
    machine_opens: int
    human_open_rate: float
    clicks: int
    machine_clicks: int
    click_rate: float
    unsubscribes: int


class LinkOut(ApiModel):
    url: str
    clicks: int
    unique_clicks: int
    machine_clicks: int


class LinksOut(ApiModel):
    items: list[LinkOut]


class AudienceCountIn(ApiModel):
    audience: AudienceIn


class AudienceCountOut(ApiModel):
    recipients: int


class SendOut(ApiModel):
    id: int
    contact_id: uuid.UUID | None
    email: str
    first_name: str
    last_name: str
    status: str
    error: str | None
    attempts: int
    delivered_at: dt.datetime | None
    opened_at: dt.datetime | None
    bounce_type: str | None
    bounced_at: dt.datetime | None
    complained_at: dt.datetime | None
    clicked_at: dt.datetime | None
    machine: bool
    machine_reason: str | None  # herald.marketing.classify.Reason, when ``machine``

    @model_validator(mode="after")
    def _reason_only_for_machine(self) -> SendOut:
        if not self.machine:
            self.machine_reason = None
        return self


class TestSendIn(ApiModel):
    """``to``: one to five addresses."""

    to: list[Annotated[str, Field(max_length=320)]] = Field(min_length=1, max_length=5)


class TestAnswerOut(ApiModel):
    to: str
    ok: bool
    code: int | None
    message: str


class TestSendOut(ApiModel):
    results: list[TestAnswerOut]
