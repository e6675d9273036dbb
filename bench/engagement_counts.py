"""After a flood of tracked-link clicks (bench/tracking.py): every click stored once, and the
campaign's and links' counters equal to a recount of the sends and click rows. Imported as
`engagement_counts` (the scripts run as `python bench/NAME.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

# The bench campaign's tracked links (merged for each send at the redirect).
LINKS = (
    "https://shop.example/spring?who={{email}}",
    "https://shop.example/hello/{{firstName|friend}}",
    "https://shop.example/sale?utm_source=herald&amp;utm_medium=email",
)


@dataclass
class ClickFlood:
    """What the click runs did: the tokens the cached runs went round (every one hit), the
    tokens the first-click run walked (the last ones, at most ``in_flight``, maybe cut off
    when wrk stopped), and the requests answered and made."""

    cached: set[str]
    first: set[str]
    in_flight: int
    answered: int
    made: int


def check(database_url: str, campaign_id: uuid.UUID, flood: ClickFlood) -> tuple[bool, str, int]:
    """(exact?, a summary, sends clicked); the recount reads every send and click of the
    campaign."""
    from sqlalchemy import func, select

    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import Campaign, MarketingClick, MarketingLink, MarketingSend

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine), write=False) as session:
            campaign = session.get(Campaign, campaign_id)
            assert campaign is not None
            clicked = {
                row.token: row.click_human_at is not None
                for row in session.execute(
                    select(MarketingSend.token, MarketingSend.click_human_at).where(
                        MarketingSend.campaign_id == campaign_id,
                        MarketingSend.clicked_at.is_not(None),
                    )
                )
            }
            opened = session.scalar(
                select(func.count()).where(
                    MarketingSend.campaign_id == campaign_id,
                    MarketingSend.clicked_at.is_not(None),
                    MarketingSend.opened_at.is_not(None),
                )
            )
            per_link = {
                (link, machine): (n, senders)
                for link, machine, n, senders in session.execute(
                    select(
                        MarketingClick.link,
                        MarketingClick.machine,
                        func.count(),
                        func.count(MarketingClick.send_id.distinct()),
                    )
                    .where(MarketingClick.campaign_id == campaign_id)
                    .group_by(MarketingClick.link, MarketingClick.machine)
                )
            }
            links = session.scalars(
                select(MarketingLink).where(MarketingLink.campaign_id == campaign_id)
            ).all()
            figures = (campaign.clicks, campaign.machine_clicks)
            link_figures = {
                link.n: (link.clicks, link.unique_clicks, link.machine_clicks) for link in links
            }
    finally:
        engine.dispose()

    rows = sum(n for n, _ in per_link.values())
    recounted = {
        n: (
            per_link.get((n, False), (0, 0))[0],
            per_link.get((n, False), (0, 0))[1],
            per_link.get((n, True), (0, 0))[0],
        )
        for n in link_figures
    }
    humans = sum(1 for human in clicked.values() if human)
    first_counted = len(set(clicked) & flood.first)
    problems = []
    if not flood.answered <= rows <= flood.made:
        problems.append(f"click rows {rows:,} not within [{flood.answered:,}, {flood.made:,}]")
    if not flood.cached <= set(clicked):
        problems.append(f"{len(flood.cached - set(clicked)):,} cached-run sends not clicked")
    if set(clicked) - flood.cached - flood.first:
        problems.append("sends clicked that no run walked")
    if not len(flood.first) - flood.in_flight <= first_counted <= len(flood.first):
        problems.append(f"first clicks {first_counted:,} of {len(flood.first):,} walked")
    if figures != (humans, len(clicked) - humans):
        recount = (humans, len(clicked) - humans)
        problems.append(f"campaign clicks/machineClicks {figures}, recount {recount}")
    if opened != len(clicked):
        problems.append(f"{len(clicked) - (opened or 0):,} clicked sends without an open")
    if link_figures != recounted:
        problems.append(f"links {link_figures}, recount {recounted}")
    summary = (
        f"clicks: {rows:,} stored ({flood.answered:,} answered, {flood.made:,} made); sends "
        f"clicked {len(clicked):,} (people {humans:,}, machines only {len(clicked) - humans:,}; "
        f"cached run {len(flood.cached):,}, first-click run {first_counted:,} of "
        f"{len(flood.first):,} walked); links (clicks, unique, machine) {link_figures}"
    )
    return not problems, summary + "".join(f"\n  MISMATCH: {p}" for p in problems), len(clicked)
