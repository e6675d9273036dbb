"""Follow-ups: a SENT campaign duplicated to its non-openers or non-clickers (the NOT_OPENED
and NOT_CLICKED audiences): who they are, decided at launch, and still only contacts that
may be mailed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update

from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.marketing.models import MarketingSend
from tests.marketing.engine import sends
from tests.marketing.factories import (
    add_contact,
    assert_error,
    assert_field_error,
    caller,
    configure_email,
    create_campaign,
    insert_campaign,
    insert_sends,
)

API = "/api/marketing"
# Each recipient of the source campaign: its send's status and engagement, and whether it is
# one of the non-openers / non-clickers.
RECIPIENTS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "human-open": ("DELIVERED", {"open_human_at": True}, False, True),
    "machine-open": ("DELIVERED", {}, True, True),  # only Apple's proxy opened it
    "human-click": ("DELIVERED", {"clicked_at": True, "click_human_at": True}, False, False),
    "machine-click": ("DELIVERED", {"clicked_at": True}, True, True),  # a scanner clicked
    "nothing": ("DELIVERED", {}, True, True),
    "failed": ("FAILED", {}, False, False),  # never delivered
    "opted-out": ("DELIVERED", {}, False, False),  # opted out since: no longer mailable
}


def sent_campaign(runtime, org_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, str]]:
    """A SENT campaign whose recipients engaged as RECIPIENTS says; their addresses by key."""
    configure_email(runtime, org_id)
    tag = uuid.uuid4().hex[:6]
    emails = {key: f"{key}-{tag}@example.com" for key in RECIPIENTS}
    add_contact(runtime, org_id, f"bystander-{tag}@example.com")  # not a recipient at all
    rows = []
    now = utcnow()
    for key, (status, engaged, _, _) in RECIPIENTS.items():
        contact_id = add_contact(runtime, org_id, emails[key], opted_out=key == "opted-out")
        row: dict[str, Any] = {"contact_id": contact_id, "email": emails[key], "status": status}
        if status == "DELIVERED":
            row["delivered_at"] = now
        for column in engaged:
            row[column] = now
        if engaged:
            row["opened_at"] = now
        rows.append(row)
    campaign_id = insert_campaign(
        runtime, org_id, "SENT", audience={"type": "ALL"}, recipients=len(rows)
    )
    insert_sends(runtime, org_id, campaign_id, rows)
    return campaign_id, emails


def expected(emails: dict[str, str], kind: str) -> list[str]:
    column = 2 if kind == "NOT_OPENED" else 3
    return sorted(emails[key] for key, row in RECIPIENTS.items() if row[column])


@pytest.mark.parametrize("kind", ["NOT_OPENED", "NOT_CLICKED"])
def test_a_follow_up_goes_to_who_did_not_open_or_click_and_may_be_mailed(
    client, runtime, admin, kind
):
    source_id, emails = sent_campaign(runtime, admin.org_id)
    response = client.post(
        f"{API}/campaigns/{source_id}/duplicate", json={"audience": kind}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["status"] == "DRAFT" and copy["name"] == "Launched news (copy)"
    assert copy["audience"] == {"type": kind, "campaignId": str(source_id)}
    assert (copy["trackOpens"], copy["trackClicks"]) == (True, True)

    wanted = expected(emails, kind)
    counted = client.post(
        f"{API}/audience/count", json={"audience": copy["audience"]}, headers=admin.headers
    )
    assert counted.json() == {"recipients": len(wanted)}  # the count before launching
    launched = client.post(f"{API}/campaigns/{copy['id']}/launch", headers=admin.headers)
    assert launched.status_code == 202, launched.text
    assert sorted(s.email for s in sends(runtime, uuid.UUID(copy["id"]))) == wanted


def test_the_audience_is_decided_at_launch(client, runtime, admin):
    source_id, emails = sent_campaign(runtime, admin.org_id)
    copy = client.post(
        f"{API}/campaigns/{source_id}/duplicate",
        json={"audience": "NOT_OPENED"},
        headers=admin.headers,
    ).json()
    # after the copy was made, "nothing" opens the source, and "machine-open" opts out
    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.email == emails["nothing"])
            .values(opened_at=utcnow(), open_human_at=utcnow())
        )
        session.execute(
            update(Contact)
            .where(Contact.email == emails["machine-open"])
            .values(marketing_opt_out=True)
        )
    client.post(f"{API}/campaigns/{copy['id']}/launch", headers=admin.headers)
    assert [s.email for s in sends(runtime, uuid.UUID(copy["id"]))] == [emails["machine-click"]]


@pytest.mark.parametrize("status", ["DRAFT", "SENDING", "FAILED"])
def test_only_a_sent_campaign_has_follow_ups(client, runtime, admin, status):
    source_id = insert_campaign(runtime, admin.org_id, status)
    for kind in ("NOT_OPENED", "NOT_CLICKED"):
        response = client.post(
            f"{API}/campaigns/{source_id}/duplicate",
            json={"audience": kind},
            headers=admin.headers,
        )
        assert_error(response, 409, "not_sent")


def test_a_duplicate_body_is_checked(client, runtime, admin):
    source_id, _ = sent_campaign(runtime, admin.org_id)
    url = f"{API}/campaigns/{source_id}/duplicate"
    for body in ({"audience": "ALL"}, {"audience": "not_opened"}, {"other": 1}):
        response = client.post(url, json=body, headers=admin.headers)
        assert response.status_code == 422, body
    # no body, or an empty one: a plain copy with the source's audience
    plain = client.post(url, headers=admin.headers).json()
    assert plain["audience"] == {"type": "ALL"}
    assert client.post(url, json={}, headers=admin.headers).json()["audience"] == {"type": "ALL"}


def test_an_engagement_audience_is_only_made_by_a_duplicate(client, runtime, admin):
    source_id, _ = sent_campaign(runtime, admin.org_id)
    audience = {"type": "NOT_OPENED", "campaignId": str(source_id)}
    created = client.post(
        f"{API}/campaigns",
        json={"name": "By hand", "subject": "Hi", "audience": audience},
        headers=admin.headers,
    )
    assert_field_error(created, "audience.type")
    draft = create_campaign(client, admin)
    patched = client.patch(
        f"{API}/campaigns/{draft['id']}", json={"audience": audience}, headers=admin.headers
    )
    assert_field_error(patched, "audience.type")

    copy = client.post(
        f"{API}/campaigns/{source_id}/duplicate",
        json={"audience": "NOT_OPENED"},
        headers=admin.headers,
    ).json()
    # sent back unchanged (a GET, then a PUT) it stays; pointed elsewhere it is refused
    put = {k: copy[k] for k in ("name", "subject", "htmlBody", "textBody", "audience")}
    replaced = client.put(f"{API}/campaigns/{copy['id']}", json=put, headers=admin.headers)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["audience"] == audience
    elsewhere = {"type": "NOT_OPENED", "campaignId": draft["id"]}
    moved = client.patch(
        f"{API}/campaigns/{copy['id']}", json={"audience": elsewhere}, headers=admin.headers
    )
    assert_field_error(moved, "audience.type")
    # a copy of the copy keeps its audience
    again = client.post(f"{API}/campaigns/{copy['id']}/duplicate", headers=admin.headers)
    assert again.json()["audience"] == audience


def test_the_count_names_a_campaign_of_the_callers_org(client, runtime, admin):
    stranger = caller(client, runtime)
    theirs, _ = sent_campaign(runtime, stranger.org_id)
    for campaign_id in (str(theirs), str(uuid.uuid4()), "not-an-id", None):
        response = client.post(
            f"{API}/audience/count",
            json={"audience": {"type": "NOT_CLICKED", "campaignId": campaign_id}},
            headers=admin.headers,
        )
        assert_field_error(response, "audience.campaignId")
