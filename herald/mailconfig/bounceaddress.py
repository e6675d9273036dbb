"""Where an org's bounces come back: its bounce address (the base of every campaign
message's VERP return path) and how many soft-bouncing campaigns in a row suppress an
address. Read by the worker, the bounce receiver and herald.bounces."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from herald.mail.sendref import split_return_path
from herald.mailconfig.repository import EmailConfigRepository, bounce_address_owners

DEFAULT_SOFT_BOUNCE_LIMIT = 3


@dataclass(frozen=True)
class BounceSettings:
    bounce_address: str | None
    soft_bounce_limit: int


def bounce_settings(session: Session, org_id: uuid.UUID) -> BounceSettings:
    row = EmailConfigRepository(session, org_id).current()
    if row is None:
        return BounceSettings(None, DEFAULT_SOFT_BOUNCE_LIMIT)
    return BounceSettings(row.bounce_address, row.soft_bounce_limit)


def bounce_addresses(session: Session) -> dict[str, uuid.UUID]:
    """Every org's bounce address (lower-cased) -> the org: what the receiver accepts."""
    return dict(bounce_address_owners(session))


def return_path_org(addresses: Mapping[str, uuid.UUID], address: str | None) -> uuid.UUID | None:
    """The org whose return path ``address`` is (its bounce address, with or without a
    VERP tag), among ``addresses`` (``bounce_addresses``); None for any other address,
    whose "+" part is no tag of ours."""
    if not address:
        return None
    return addresses.get(split_return_path(address).bounce_address)
