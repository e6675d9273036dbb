"""Unsubscribes by token: what the unsubscribe page shows, and the one-click POSTs (RFC 8058
and the page's own form), group-committed."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, true, tuple_, update
from sqlalchemy.engine import Connection
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


# PostgreSQL has data-modifying WITH queries: there the batch is one statement, each token
# looked up once (half the batch's cost on PostgreSQL's side and on Herald's).
_FOUND = (
    select(
        MarketingSend.id,
        MarketingSend.token,
        MarketingSend.email,
        MarketingSend.contact_id,
        MarketingSend.org_id,
    )
    .where(MarketingSend.token.in_(_TOKENS))
    .cte("found")
)
_MARKED = (
    update(MarketingSend)
    .where(MarketingSend.id == _FOUND.c.id, MarketingSend.unsubscribed_at.is_(None))
    .values(unsubscribed_at=bindparam("now"))
    .returning(MarketingSend.id, MarketingSend.campaign_id)
    .cte("marked")
)
_OPTED_OUT = (
    update(Contact)
    .where(
        Contact.id == _FOUND.c.contact_id,
        Contact.org_id == _FOUND.c.org_id,
        Contact.marketing_opt_out.is_(False),
    )
    .values(marketing_opt_out=true(), updated_at=bindparam("now"))
    .cte("opted_out")
)
_IN_ONE_STATEMENT = (
    select(_FOUND.c.token, _FOUND.c.email, Org.name, _MARKED.c.id, _MARKED.c.campaign_id)
    .join(Org, Org.id == _FOUND.c.org_id)
    .outerjoin(_MARKED, _MARKED.c.id == _FOUND.c.id)
    .add_cte(_OPTED_OUT)
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
        found, marked = _apply(connection, params)
        per_campaign = Counter(row.campaign_id for row in marked)
        for campaign_id in sorted(per_campaign, key=str):
            connection.execute(
                _COUNT_UNSUBSCRIBES, {"b_campaign_id": campaign_id, "n": per_campaign[campaign_id]}
            )
    return Applied(
        {row.token: Unsubscribed(row.name, row.email) for row in found},
        [(row.id, row.campaign_id) for row in marked],
    )


def _apply(connection: Connection, params: dict[str, Any]) -> tuple[Sequence[Any], Sequence[Any]]:
    """The batch's writes: (each known token's page details, the sends marked now). One
    statement on PostgreSQL; three on SQLite, which has no UPDATE inside WITH."""
    if connection.dialect.name == "postgresql":
        found = connection.execute(_IN_ONE_STATEMENT, params).all()
        return found, [row for row in found if row.id is not None]
    marked = connection.execute(_MARK_SENDS, params).all()
    connection.execute(_OPT_OUT, params)
    return connection.execute(_DETAILS, params).all(), marked


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
