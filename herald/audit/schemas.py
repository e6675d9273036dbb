"""The audit log's JSON shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from herald.schemas import ApiModel


class AuditEventOut(ApiModel):
    id: int
    at: dt.datetime
    actor: str = Field(description="Who: a user's email as it was then, or a system actor.")
    action: str = Field(description="What, e.g. `user.role_changed` (see docs/api.md).")
    target: str = Field(description='What it was done to, e.g. "user ann@example.com".')
    details: dict[str, Any] = Field(description="What changed; never a secret's value.")
