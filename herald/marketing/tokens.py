"""Sends looked up by the public token of their links (the pixel, the unsubscribe link):
across orgs, since the token alone names the send."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.marketing.models import MarketingSend
from herald.orgs.models import Org

TOKEN_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def well_formed(token: str) -> bool:
    """A token as launches make them: anything else is not looked up at all."""
    return bool(TOKEN_PATTERN.match(token))


def find_send(session: Session, token: str) -> tuple[MarketingSend, str] | None:
    """The send of this token and its org's name."""
    if not well_formed(token):
        return None
    row = session.execute(
        select(MarketingSend, Org.name)
        .join(Org, Org.id == MarketingSend.org_id)
        .where(MarketingSend.token == token)
    ).first()
    return (row[0], row[1]) if row else None
