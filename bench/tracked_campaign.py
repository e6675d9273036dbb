"""The tracking bench's campaign (bench/tracking.py): seeded with N delivered sends and three
tracked links, and its opens and unsubscribes read back. Imported as `tracked_campaign` (the
scripts run as `python bench/NAME.py`)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from engagement_counts import LINKS


@dataclass
class Seeded:
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    tokens: list[str]


def seed(database_url: str, n: int) -> Seeded:
    """An org, N contacts and a SENT campaign with three tracked links whose N sends were
    all delivered an hour ago (so a click is no scanner's for its timing alone)."""
    from sqlalchemy import insert

    from herald import migrate
    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work, utcnow
    from herald.marketing.links import store_links
    from herald.marketing.models import Campaign, MarketingSend
    from herald.orgs.service import create_org

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    now = utcnow() - dt.timedelta(hours=1)
    with unit_of_work(sessions) as session:
        org = create_org(session, f"Bench {uuid.uuid4().hex[:6]}", ["marketing"])
        campaign = Campaign(
            org_id=org.id, name="Bench", subject="Spring offers",
            html_body="".join(f'<a href="{url}">{i}</a>' for i, url in enumerate(LINKS)),
            status="SENT", recipients=n, delivered=n, launched_at=now, completed_at=now,
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        store_links(session, campaign)
        org_id, campaign_id = org.id, campaign.id
    tokens = [secrets.token_hex(32) for _ in range(n)]
    tag = uuid.uuid4().hex[:6]
    for start in range(0, n, 10_000):
        chunk = range(start, min(start + 10_000, n))
        contact_ids = [uuid.uuid4() for _ in chunk]
        emails = [f"c{i}-{tag}@bench.test" for i in chunk]
        with unit_of_work(sessions) as session:
            session.execute(
                insert(Contact),
                [
                    {"id": cid, "org_id": org_id, "email": email, "email_key": email,
                     "status": "CUSTOMER", "marketing_opt_out": False,
                     "created_at": now, "updated_at": now}
                    for cid, email in zip(contact_ids, emails, strict=True)
                ],
            )  # fmt: skip
            session.execute(
                insert(MarketingSend),
                [
                    {"org_id": org_id, "campaign_id": campaign_id, "contact_id": cid,
                     "email": email, "token": tokens[i], "status": "DELIVERED", "attempts": 1,
                     "next_attempt_at": now, "created_at": now, "delivered_at": now}
                    for i, cid, email in zip(chunk, contact_ids, emails, strict=True)
                ],
            )  # fmt: skip
    engine.dispose()
    return Seeded(org_id, campaign_id, tokens)


def counts(database_url: str, seeded: Seeded) -> tuple[int, int, int, int]:
    """(campaign.opens, sends opened, sends unsubscribed, contacts opted out)."""
    from sqlalchemy import func, select

    from herald.crm.models import Contact
    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import Campaign, MarketingSend

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine), write=False) as session:
            campaign_id = seeded.campaign_id
            sends = select(func.count()).where(MarketingSend.campaign_id == campaign_id)
            return (
                session.scalar(select(Campaign.opens).where(Campaign.id == campaign_id)) or 0,
                session.scalar(sends.where(MarketingSend.opened_at.is_not(None))) or 0,
                session.scalar(sends.where(MarketingSend.unsubscribed_at.is_not(None))) or 0,
                session.scalar(
                    select(func.count())
                    .select_from(Contact)
                    .where(Contact.org_id == seeded.org_id, Contact.marketing_opt_out)
                )
                or 0,
            )
    finally:
        engine.dispose()


def stray_unsubscribes(database_url: str, seeded: Seeded, *posted: list[str]) -> int:
    """Sends unsubscribed whose token was never posted (must be none)."""
    from sqlalchemy import select

    from herald.db import make_engine, make_session_factory, unit_of_work
    from herald.marketing.models import MarketingSend

    allowed = {token for tokens in posted for token in tokens}
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine), write=False) as session:
            done = session.scalars(
                select(MarketingSend.token).where(
                    MarketingSend.campaign_id == seeded.campaign_id,
                    MarketingSend.unsubscribed_at.is_not(None),
                )
            )
            return sum(1 for token in done if token not in allowed)
    finally:
        engine.dispose()
