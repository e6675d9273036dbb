"""Unsubscribes by token: what the unsubscribe page shows, and the one-click POSTs (RFC 8058
and the page's own form), group-committed."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import bindparam, select, true, tuple_, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import BindParameter

from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.groupcommit import GroupCommit
from herald.log import get_logger
from herald.marketing.models import Campaign, MarketingSend
from herald.marketing.tokens import find_send
from herald.orgs.models import Org
from herald.runtime import Runtime

log = get_logger("herald.tracking")


@dataclass(frozen=True)
class Unsubscribed:
    """What the page shows: whose list, and a hint of the address."""

    org_name: str
    email: str

    @property
    def email_hint(self) -> str:
        local, _, domain = self.email.partition("@")
        return f"{local[:1]}***@{domain}" if domain else "your address"


def page_details(session: Session, token: str) -> tuple[bool, Unsubscribed] | None:
    """(already unsubscribed, the page's details) for a known token; reads only."""
    found = find_send(session, token)
    if found is None:
        return None
    send, org_name = found
    return send.unsubscribed_at is not None, Unsubscribed(org_name, send.email)


@dataclass(frozen=True)
class Applied:
    """A batch's outcome: the page's details of each known token (an unknown one is left
    out), and the sends this batch marked, (id, campaign id) each."""

    found: dict[str, Unsubscribed]
    marked: list[tuple[int, uuid.UUID]]


# Built once: a flood runs them many times a second, and the token list is one expanding
# parameter, so no statement is rebuilt (or its tokens coerced one by one) per batch.
_TOKENS: BindParameter[list[str]] = bindparam("tokens", expanding=True)
_MARK_SENDS = (
    update(MarketingSend)
    .where(MarketingSend.token.in_(_TOKENS), MarketingSend.unsubscribed_at.is_(None))
    .values(unsubscribed_at=bindparam("now"))
    .returning(MarketingSend.id, MarketingSend.campaign_id)
)
_OPT_OUT = (
    update(Contact)
    .where(
        # (id, org_id) together: the contact of the send, in the send's org
        tuple_(Contact.id, Contact.org_id).in_(
            select(MarketingSend.contact_id, MarketingSend.org_id).where(
                MarketingSend.token.in_(_TOKENS)
            )
        ),
        Contact.marketing_opt_out.is_(False),
    )
    .values(marketing_opt_out=true(), updated_at=bindparam("now"))
)
# The campaign's unsubscribes counter moves with the sends it counts (stats.unsubscribes).
_COUNT_UNSUBSCRIBES = (
    update(Campaign)
    .where(Campaign.id == bindparam("b_campaign_id"))
    .values(unsubscribes=Campaign.unsubscribes + bindparam("n"))
)
_DETAILS = (
    select(MarketingSend.token, MarketingSend.email, Org.name)
    .join(Org, Org.id == MarketingSend.org_id)
    .where(MarketingSend.token.in_(_TOKENS))
)


def unsubscribe_tokens(sessions: sessionmaker[Session], tokens: list[str]) -> Applied:
    """Opt the contacts of these sends out for good, in one transaction; repeating it
    changes nothing more.

    An unknown token changes nothing. The writes change only what is still to change
    (``unsubscribed_at IS NULL``, not yet opted out), so two batches holding one token mark
    it once.
    """
    params = {"tokens": tokens, "now": utcnow()}
    with unit_of_work(sessions) as session:
        connection = session.connection()
        marked = connection.execute(_MARK_SENDS, params).all()
        connection.execute(_OPT_OUT, params)
        per_campaign = Counter(row.campaign_id for row in marked)
        for campaign_id in sorted(per_campaign, key=str):
            connection.execute(
                _COUNT_UNSUBSCRIBES, {"b_campaign_id": campaign_id, "n": per_campaign[campaign_id]}
            )
        found = connection.execute(_DETAILS, params).all()
    return Applied(
        {row.token: Unsubscribed(row.name, row.email) for row in found},
        [(row.id, row.campaign_id) for row in marked],
    )


class Unsubscriber:
    """Applies one-click unsubscribes in batches (herald.groupcommit): a request waits for
    the commit of the batch that holds it, so its 200 still means the contact is opted out."""

    BATCH = 500

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._batches: GroupCommit[str, Unsubscribed | None] = GroupCommit(self._write, self.BATCH)

    async def unsubscribe(self, token: str) -> Unsubscribed | None:
        """The page's details for a known token (now opted out), None for an unknown one."""
        return await self._batches.submit(token)

    async def close(self) -> None:
        """After the batches still waiting are written."""
        await self._batches.close()

    def _write(self, tokens: list[str]) -> list[Unsubscribed | None]:
        applied = unsubscribe_tokens(self.runtime.sessions, sorted(set(tokens)))
        if applied.marked:  # committed; one line per batch, not one per send
            log.info(
                "contacts.unsubscribed",
                count=len(applied.marked),
                send_ids=[send_id for send_id, _ in applied.marked],
                campaign_ids=sorted({str(campaign_id) for _, campaign_id in applied.marked}),
            )
        return [applied.found.get(token) for token in tokens]
