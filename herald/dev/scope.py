"""Which captured messages of the dev Inbox a viewer may see: their own org's, and those
Herald sent for no org (notes and tests from other programs). A campaign message belongs to
the org of the send whose unsubscribe token it carries (a token names one send and cannot be
guessed), else to the org its Feedback-ID names."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.dev.mailbox import Summary
from herald.marketing.models import MarketingSend


def visible_to(session: Session, org_id: uuid.UUID, messages: list[Summary]) -> list[Summary]:
    tokens = {m.token for m in messages if m.token}
    known: dict[str, uuid.UUID] = {}
    if tokens:
        rows = session.execute(
            select(MarketingSend.token, MarketingSend.org_id).where(MarketingSend.token.in_(tokens))
        )
        known = {token: org for token, org in rows}
    shown = []
    for m in messages:
        owner = known.get(m.token or "") or _feedback_org(m.feedback_org)
        if owner is None or owner == org_id:
            shown.append(m)
    return shown


def _feedback_org(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
