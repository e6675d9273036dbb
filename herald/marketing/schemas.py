"""Campaigns, their stats and their sends as the JSON API shows and takes them.

The input models check shapes only; lengths, characters, addresses, placeholders and
statuses are checked by herald.marketing.service, which names the field in its 422.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field

from herald.schemas import ApiModel


class AudienceIn(ApiModel):
    """``{"type": "ALL"}`` or ``{"type": "STATUS", "statuses": [...]}`` (at least one)."""

    type: Literal["ALL", "STATUS"]
    statuses: list[str] | None = None


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


class CampaignPatchIn(ApiModel):
    """PATCH: only the fields sent change."""

    name: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    subject: str | None = None
    html_body: str | None = None
    text_body: str | None = None
    audience: AudienceIn | None = None


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
