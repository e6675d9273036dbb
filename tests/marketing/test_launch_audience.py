"""What a launch creates: one send per eligible address, each with its own token."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.marketing.launch import launch_campaign
from tests.marketing.engine import add_contacts, arrange, campaign, sends


def test_every_eligible_contact_gets_one_send_with_its_own_token(runtime, smtp_server) -> None:
    arranged = arrange(runtime, smtp_server, 0, launch=False)
    add_contacts(runtime, arranged.org_id, ["opted.out@example.com"], marketing_opt_out=True)
    add_contacts(runtime, arranged.org_id, ["Mixed.Case@Example.com", "plain@example.com"])
    add_contacts(runtime, arranged.org_id, ["prospect@example.com"], status="PROSPECT")

    with unit_of_work(runtime.sessions) as session:
        launched = launch_campaign(
            session, arranged.org_id, arranged.campaign_id, actor=system_actor(arranged.org_id, CLI)
        )

    rows = sends(runtime, arranged.campaign_id)
    assert launched.recipients == len(rows) == 3
    assert sorted(s.email for s in rows) == [
        "Mixed.Case@Example.com",
        "plain@example.com",
        "prospect@example.com",
    ]
    assert len({s.contact_id for s in rows}) == 3
    assert len({s.token for s in rows}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{64}", s.token) for s in rows)
    assert campaign(runtime, arranged.campaign_id).status == "SENDING"


def test_an_address_differing_only_in_case_cannot_be_a_second_recipient(
    runtime, smtp_server
) -> None:
    """The launch has no DISTINCT: it relies on email_key being unique per org."""
    arranged = arrange(runtime, smtp_server, 0, launch=False)
    add_contacts(runtime, arranged.org_id, ["Ann.Lee@Example.com"])
    with pytest.raises(IntegrityError):
        add_contacts(runtime, arranged.org_id, ["ann.lee@example.COM"])

    with unit_of_work(runtime.sessions) as session:
        launched = launch_campaign(
            session, arranged.org_id, arranged.campaign_id, actor=system_actor(arranged.org_id, CLI)
        )

    assert launched.recipients == 1
    assert [s.email for s in sends(runtime, arranged.campaign_id)] == ["Ann.Lee@Example.com"]


def test_the_launch_leaves_the_pooled_connection_as_it_found_it(runtime, smtp_server) -> None:
    """SQLite: the launch's larger page cache is given back to the pooled connection."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite changes a connection setting for the launch")
    arranged = arrange(runtime, smtp_server, 3, launch=False)
    with unit_of_work(runtime.sessions) as session:
        connection = session.connection()
        before = _cache_size(connection)
        launch_campaign(
            session, arranged.org_id, arranged.campaign_id, actor=system_actor(arranged.org_id, CLI)
        )
        assert _cache_size(connection) == before
    assert campaign(runtime, arranged.campaign_id).recipients == 3


def _cache_size(connection) -> object:
    return connection.execute(text("PRAGMA cache_size")).scalar()
