"""Where an org's bounces come back: its bounce address (the base of every campaign
message's VERP return path) and how many soft-bouncing campaigns in a row suppress an
address. Read by the worker, the bounce receiver and herald.bounces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.mailconfig.models import EmailConfig

DEFAULT_SOFT_BOUNCE_LIMIT = 3


@dataclass(frozen=True)
class BounceSettings:
    bounce_address: str | None
    soft_bounce_limit: int


def bounce_settings(session: Session, org_id: uuid.UUID) -> BounceSettings:
    row = session.execute(
        select(EmailConfig.bounce_address, EmailConfig.soft_bounce_limit).where(
            EmailConfig.org_id == org_id
        )
    ).one_or_none()
    if row is None:
        return BounceSettings(None, DEFAULT_SOFT_BOUNCE_LIMIT)
    return BounceSettings(row.bounce_address, row.soft_bounce_limit)


def bounce_addresses(session: Session) -> dict[str, uuid.UUID]:
    """Every org's bounce address (lower-cased) -> the org: what the receiver accepts.
    Across orgs by design: the receiver serves them all, and one address has one org."""
    rows = session.execute(
        select(EmailConfig.bounce_address, EmailConfig.org_id).where(
            EmailConfig.bounce_address.is_not(None)
        )
    )
    return {address: org_id for address, org_id in rows if address}
