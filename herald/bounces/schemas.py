"""Bounce reports as the JSON API shows them, and the API's own bounce."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import Field

from herald.schemas import ApiModel
from herald.text import MAX_REASON


class BounceOut(ApiModel):
    id: int
    received_at: dt.datetime
    type: str  # hard | soft | complaint | ignored | unmatched
    email: str
    send_id: int | None
    campaign_id: uuid.UUID | None
    reason: str
    source: str  # smtp | imap | ses | sendgrid | mailgun | postmark | api


class BounceIn(ApiModel):
    """A bounce or complaint learnt elsewhere; matched to the org's latest delivered send to
    ``email`` like any report."""

    email: str = Field(max_length=320)
    type: Literal["hard", "soft", "complaint"]
    reason: str = Field(default="", max_length=MAX_REASON)
