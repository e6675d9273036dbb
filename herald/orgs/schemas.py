"""Users as the Settings API shows them."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import Field

from herald.orgs.models import Role
from herald.schemas import ApiModel


class UserRow(ApiModel):
    id: uuid.UUID
    email: str
    role: str
    org_id: uuid.UUID
    mfa_enabled: bool
    is_active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class UserCreateIn(ApiModel):
    email: str = Field(max_length=320)
    password: str = Field(min_length=8, max_length=1024)
    role: Role


class UserPatchIn(ApiModel):
    role: Role | None = None
    is_active: bool | None = None


class MeOut(ApiModel):
    user: UserRow
    org_name: str
    features: list[str]
