"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import MetaData, Uuid, create_engine, inspect

from herald import migrate
from herald.models import metadata
from tests.conftest import own_database


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    with own_database(database_url, f"herald_mig_{uuid.uuid4().hex[:10]}") as url:
        yield url


def test_upgrade_head_then_check_finds_no_drift(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.check(fresh_database_url)  # raises if the models and migrations disagree
    engine = create_engine(fresh_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables


def test_upgrade_is_idempotent(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.upgrade(fresh_database_url)
    migrate.check(fresh_database_url)


def test_click_tracking_keeps_the_figures_of_campaigns_sent_before_it(
    fresh_database_url: str,
) -> None:
    """Opens counted before classification count as human; unsubscribes are counted from
    the sends; campaigns already launched sent their links as written (trackClicks false)."""
    migrate.upgrade(fresh_database_url, "f3b8d2a6c915")  # the revision before
    engine = create_engine(fresh_database_url)
    tables = reflected(engine)
    orgs, campaigns, sends = (
        tables.tables[name] for name in ("orgs", "campaigns", "marketing_sends")
    )
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org, sent, draft = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamps = {"created_at": now, "updated_at": now}
    body = {"from_name": "", "from_email": "", "subject": "Hi", "html_body": "", "text_body": ""}
    counts = {"recipients": 3, "delivered": 3, "failed": 0, "unknown": 0}
    try:
        with engine.begin() as conn:
            conn.execute(orgs.insert(), {"id": org, "name": "Old", "features": [], **stamps})
            conn.execute(
                campaigns.insert(),
                [
                    {"id": sent, "org_id": org, "name": "Sent", "audience": {"type": "ALL"},
                     "status": "SENT", "opens": 2, **counts, **body, **stamps},
                    {"id": draft, "org_id": org, "name": "Draft", "audience": {"type": "ALL"},
                     "status": "DRAFT", "opens": 0, **{**counts, "recipients": 0,
                     "delivered": 0}, **body, **stamps},
                ],
            )  # fmt: skip
            conn.execute(
                sends.insert(),
                [
                    {"org_id": org, "campaign_id": sent, "email": f"{n}@example.com",
                     "first_name": "", "last_name": "", "company_name": "",
                     "token": f"{n:064x}", "status": "DELIVERED", "attempts": 1,
                     "next_attempt_at": now, "created_at": now,
                     "opened_at": now if n < 2 else None,
                     "unsubscribed_at": now if n == 1 else None}
                    for n in range(3)
                ],
            )  # fmt: skip
        migrate.upgrade(fresh_database_url)
        tables = reflected(engine)
        campaigns, sends = tables.tables["campaigns"], tables.tables["marketing_sends"]
        with engine.connect() as conn:
            rows = {row.id: row for row in conn.execute(campaigns.select())}
            opened = conn.execute(sends.select().where(sends.c.opened_at.is_not(None))).all()
    finally:
        engine.dispose()
    old = rows[sent]
    assert (old.opens, old.human_opens, old.machine_opens, old.unsubscribes) == (2, 2, 0, 1)
    assert (bool(old.track_opens), bool(old.track_clicks)) == (True, False)
    assert (old.clicks, old.machine_clicks) == (0, 0)
    assert (bool(rows[draft].track_opens), bool(rows[draft].track_clicks)) == (True, True)
    assert len(opened) == 2
    assert all(send.open_human_at == send.opened_at for send in opened)


def reflected(engine) -> MetaData:  # type: ignore[no-untyped-def]
    """The tables as the database has them, their ids as UUIDs (SQLite reflects text)."""
    tables = MetaData()
    tables.reflect(engine)
    for table in tables.tables.values():
        for column in table.columns:
            uuid_id = column.name == "id" and table.name != "marketing_sends"  # sends: integers
            if uuid_id or column.name in ("org_id", "campaign_id"):
                column.type = Uuid()
    return tables
