"""Contacts, statuses and import results as the JSON API shows and takes them."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import Field

from herald.schemas import ApiModel


class StatusOut(ApiModel):
    name: str


class ContactOut(ApiModel):
    id: uuid.UUID
    email: str | None
    first_name: str
    last_name: str
    company_name: str
    status: str
    marketing_opt_out: bool
    email_status: str
    email_status_reason: str | None
    email_status_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ContactCreateIn(ApiModel):
    """Lengths and characters are checked by the service (herald.crm.fields), as for imports."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    status: str | None = None
    marketing_opt_out: bool = Field(default=False, strict=True)


class ContactPatchIn(ApiModel):
    """Only the fields sent change; ``email: null`` (or blank) removes the address;
    ``emailStatus`` may only be set back to ``OK`` (by an ADMIN)."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    status: str | None = None
    marketing_opt_out: bool | None = Field(default=None, strict=True)
    email_status: str | None = None


class ImportLineError(ApiModel):
    line: int
    message: str


class ImportResultOut(ApiModel):
    created: int
    updated: int
    skipped: int
    errors: list[ImportLineError]
