"""A campaign's tracked links: stored at launch in body order, where ``/c/{token}/{n}``
leads (that send's campaign's link n, merged for its contact, and nowhere else), and the
links table of the campaign page and API."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from herald.db import unit_of_work
from herald.groupcommit import GroupCommit
from herald.mail.compose import compile_bodies
from herald.mail.links import LinkTarget
from herald.marketing.models import Campaign, CampaignStatus, MarketingLink, MarketingSend
from herald.runtime import Runtime

L = MarketingLink
S = MarketingSend


def body_links(campaign: Campaign) -> tuple[str, ...]:
    """The URLs the campaign's messages track, in order (none without click tracking)."""
    if not campaign.track_clicks:
        return ()
    return compile_bodies(campaign.html_body, campaign.text_body).links


def store_links(session: Session, campaign: Campaign) -> None:
    """At launch, in its transaction: the links the workers' messages will point to."""
    urls = body_links(campaign)
    if urls:
        session.execute(
            insert(L),
            [
                {"campaign_id": campaign.id, "org_id": campaign.org_id, "n": n, "url": url}
                for n, url in enumerate(urls, start=1)
            ],
        )


@dataclass(frozen=True)
class LinkFigures:
    url: str
    clicks: int
    unique_clicks: int
    machine_clicks: int


def campaign_links(session: Session, campaign: Campaign) -> list[LinkFigures]:
    """The campaign's links with their figures; a DRAFT's are those its body would track,
    at zero. Give it a campaign of the caller's org (found through CampaignRepository)."""
    if campaign.status == CampaignStatus.DRAFT.value:
        return [LinkFigures(url, 0, 0, 0) for url in body_links(campaign)]
    rows = session.scalars(
        select(L).where(L.campaign_id == campaign.id, L.org_id == campaign.org_id).order_by(L.n)
    )
    return [LinkFigures(r.url, r.clicks, r.unique_clicks, r.machine_clicks) for r in rows]


# --- the redirect's lookups ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Send:
    campaign_id: uuid.UUID
    values: dict[str, str]
    targets: dict[int, str | None]  # link n merged for this send, once asked for


class NotKept:
    """known()'s answer when the send is not kept: ask target()."""


NOT_KEPT = NotKept()
_SENDS = select(S.token, S.campaign_id, S.first_name, S.last_name, S.company_name, S.email).where(
    S.token.in_(bindparam("tokens", expanding=True))
)
_LINKS = (
    select(L.campaign_id, L.n, L.url)
    .where(L.campaign_id.in_(bindparam("ids", expanding=True)))
    .order_by(L.campaign_id, L.n)
)


# What a read gives for one token: its send and its campaign's links.
_Read = tuple[_Send, tuple[LinkTarget, ...]]


class LinkTargets:
    """Where each ``/c/`` link leads, read from the database and kept: a send's merge values
    (copied at launch) and a launched campaign's links never change.

    Tokens not yet kept are read together (herald.groupcommit: the requests that arrive
    while one read runs go in the next), so a flood of first clicks costs one query per
    round, not per click. Unknown tokens are not kept (nothing to fill the cache with)."""

    MAX_SENDS = 100_000
    MAX_CAMPAIGNS = 10_000
    BATCH = 500

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._unsubscribe = runtime.settings.base_url.rstrip("/") + "/u/"
        self._sends: OrderedDict[str, _Send] = OrderedDict()
        self._links: OrderedDict[uuid.UUID, tuple[LinkTarget, ...]] = OrderedDict()
        self._reads: GroupCommit[str, _Read | None] = GroupCommit(self._read, self.BATCH)

    def known(self, token: str, n: int) -> str | NotKept | None:
        """As :meth:`target` when the send and its campaign's links are kept (no I/O), else
        NOT_KEPT."""
        send = self._sends.get(token)
        if send is None or send.campaign_id not in self._links:
            return NOT_KEPT
        return self._merged(send, n)

    async def target(self, token: str, n: int) -> str | None:
        """The URL of link ``n`` for the send of ``token``, or None: unknown token, no such
        link of its campaign, or a merged URL that is not an absolute http(s) one."""
        found = self.known(token, n)
        if not isinstance(found, NotKept):
            return found
        read = await self._reads.submit(token)
        if read is None:
            return None
        send, links = read
        _keep(self._links, send.campaign_id, links, self.MAX_CAMPAIGNS)
        _keep(self._sends, token, send, self.MAX_SENDS)
        return self._merged(send, n)

    async def close(self) -> None:
        await self._reads.close()

    def _merged(self, send: _Send, n: int) -> str | None:
        if n in send.targets:
            return send.targets[n]
        links = self._links.get(send.campaign_id, ())
        if not 1 <= n <= len(links):
            return None  # not kept: no one can grow the memory by asking other numbers
        merged = send.targets[n] = links[n - 1].for_recipient(send.values)
        return merged

    def _read(self, tokens: list[str]) -> list[_Read | None]:
        """One read (on a thread) of the sends of ``tokens`` and of their campaigns' links
        not kept yet; per token, the send and its campaign's links, or None."""
        with unit_of_work(self.runtime.sessions, write=False) as session:
            connection = session.connection()
            found = {
                row.token: _Send(
                    row.campaign_id,
                    {
                        "firstName": row.first_name,
                        "lastName": row.last_name,
                        "companyName": row.company_name,
                        "email": row.email,
                        "unsubscribeUrl": self._unsubscribe + row.token,
                    },
                    {},
                )
                for row in connection.execute(_SENDS, {"tokens": sorted(set(tokens))})
            }
            # a kept campaign's links are used as they are (one lookup, safe from a thread)
            links = {c: self._links.get(c) for c in {s.campaign_id for s in found.values()}}
            wanted = sorted((c for c, kept in links.items() if kept is None), key=str)
            read: dict[uuid.UUID, list[LinkTarget]] = {campaign: [] for campaign in wanted}
            if wanted:
                for row in connection.execute(_LINKS, {"ids": wanted}):
                    read[row.campaign_id].append(LinkTarget(row.url))
        links.update({campaign: tuple(targets) for campaign, targets in read.items()})
        return [
            (found[token], links[found[token].campaign_id] or ()) if token in found else None
            for token in tokens
        ]


def _keep(cache: OrderedDict[Any, Any], key: object, value: object, limit: int) -> None:
    """Keep the newest ``limit`` entries."""
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)
