"""Campaigns over the JSON API: create, read, edit, delete, validation, duplicate, launch,
stats, the audience count, roles and tenancy."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from herald.crm.models import ContactStatus
from herald.db import unit_of_work
from herald.marketing.models import MarketingSend
from tests.marketing.factories import (
    NO_ENGAGEMENT,
    add_contact,
    assert_error,
    assert_field_error,
    caller,
    campaign_body,
    configure_email,
    create_campaign,
    get_campaign_row,
    insert_campaign,
)

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

API = "/api/marketing"
FIELDS = {
    "id", "name", "fromName", "fromEmail", "subject", "htmlBody", "textBody", "audience",
    "status", "recipients", "delivered", "failed", "opens", "openRate", "createdAt",
    "updatedAt", "launchedAt", "completedAt", "failureReason", "unknown", "pending",
    "holdReason", "cancelled", "scheduledAt", "pausedAt", "pauseReason", "bounced", "complaints",
    "trackOpens", "trackClicks",
}  # fmt: skip
STATS_FIELDS = {
    "status", "recipients", "delivered", "failed", "unknown", "pending", "cancelled", "opens",
    "openRate", "bounced", "complaints", "humanOpens", "machineOpens", "humanOpenRate", "clicks",
    "machineClicks", "clickRate", "unsubscribes",
}  # fmt: skip


# --- CRUD ---


def test_create_read_patch_put_delete(client, admin):
    created = client.post(f"{API}/campaigns", json=campaign_body(), headers=admin.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == FIELDS
    assert body["status"] == "DRAFT"
    assert body["name"] == "Spring news"
    assert body["fromEmail"] == "news@acme.example.com"
    assert body["audience"] == {"type": "ALL"}
    assert (body["recipients"], body["delivered"], body["failed"], body["opens"]) == (0, 0, 0, 0)
    assert (body["unknown"], body["pending"], body["openRate"]) == (0, 0, 0)
    assert body["launchedAt"] is None and body["completedAt"] is None
    assert body["failureReason"] is None and body["holdReason"] is None
    assert body["cancelled"] == 0 and body["scheduledAt"] is None
    assert body["pausedAt"] is None and body["pauseReason"] is None
    assert body["createdAt"].endswith(("Z", "+00:00"))

    url = f"{API}/campaigns/{body['id']}"
    assert client.get(url, headers=admin.headers).json() == body

    patched = client.patch(
        url,
        json={
            "subject": "  News for {{firstName}}  ",
            "audience": {"type": "STATUS", "statuses": ["lead", "CUSTOMER", "LEAD"]},
        },
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert after["subject"] == "News for {{firstName}}"  # trimmed
    assert after["audience"] == {"type": "STATUS", "statuses": ["LEAD", "CUSTOMER"]}
    assert after["name"] == "Spring news"  # untouched
    assert after["htmlBody"] == body["htmlBody"]
    assert after["updatedAt"] >= body["updatedAt"]

    replaced = client.put(url, json={"name": "Autumn", "subject": "Autumn"}, headers=admin.headers)
    assert replaced.status_code == 200, replaced.text
    full = replaced.json()
    assert (full["name"], full["subject"]) == ("Autumn", "Autumn")
    # PUT replaces everything: what was left out is back to its default
    assert (full["fromName"], full["fromEmail"], full["htmlBody"], full["textBody"]) == ("",) * 4
    assert full["audience"] == {"type": "ALL"}
    assert client.get(url, headers=admin.headers).json() == full

    deleted = client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(client.get(url, headers=admin.headers), 404, "not_found")
    assert_error(client.delete(url, headers=admin.headers), 404, "not_found")


def test_optional_fields_default_and_from_email_may_be_left_to_the_org(client, admin):
    created = client.post(
        f"{API}/campaigns", json={"name": "Bare", "subject": "Hi"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["fromName"], body["fromEmail"], body["htmlBody"], body["textBody"]) == ("",) * 4
    assert body["audience"] == {"type": "ALL"}
    nulls = client.post(
        f"{API}/campaigns",
        json={
            "name": "Nulls",
            "subject": "Hi",
            "fromName": None,
            "fromEmail": None,
            "htmlBody": None,
        },
        headers=admin.headers,
    )
    assert nulls.status_code == 201, nulls.text
    assert nulls.json()["fromEmail"] == ""


def test_list_is_newest_first_filtered_by_status_and_paginated(client, admin, runtime):
    ids = [create_campaign(client, admin, name=f"Campaign {i}")["id"] for i in range(3)]
    sent = str(insert_campaign(runtime, admin.org_id, "SENT"))
    listed = client.get(f"{API}/campaigns", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"items", "total", "page", "pageSize"}
    assert (body["total"], body["page"], body["pageSize"]) == (4, 1, 50)
    assert [c["id"] for c in body["items"]] == [sent, *reversed(ids)]
    assert set(body["items"][0]) == FIELDS

    drafts = client.get(f"{API}/campaigns", params={"status": "DRAFT"}, headers=admin.headers)
    assert [c["id"] for c in drafts.json()["items"]] == list(reversed(ids))
    assert drafts.json()["total"] == 3
    only_sent = client.get(f"{API}/campaigns", params={"status": "SENT"}, headers=admin.headers)
    assert [c["id"] for c in only_sent.json()["items"]] == [sent]

    second = client.get(
        f"{API}/campaigns", params={"page": 2, "pageSize": 3}, headers=admin.headers
    ).json()
    assert (second["total"], second["page"], second["pageSize"]) == (4, 2, 3)
    assert [c["id"] for c in second["items"]] == [ids[0]]

    for params, field in (
        ({"status": "BOGUS"}, "status"),
        ({"pageSize": 501}, "pageSize"),
        ({"pageSize": 0}, "pageSize"),
        ({"page": 0}, "page"),
    ):
        assert_field_error(
            client.get(f"{API}/campaigns", params=params, headers=admin.headers), field
        )
    assert (
        client.get(f"{API}/campaigns", params={"pageSize": 500}, headers=admin.headers).status_code
        == 200
    )


def test_campaigns_of_another_org_are_not_listed(client, runtime, admin):
    create_campaign(client, admin)
    other = caller(client, runtime)
    assert client.get(f"{API}/campaigns", headers=other.headers).json()["total"] == 0


# --- validation: every rule names its field ---

BIG = "x" * (1024 * 1024 + 1)

INVALID = [
    ({"name": None}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": "Spring\x00news"}, "name"),
    ({"subject": None}, "subject"),
    ({"subject": ""}, "subject"),
    ({"subject": "s" * 999}, "subject"),
    ({"subject": "Hello\r\nBcc: victim@example.com"}, "subject"),
    ({"subject": "Hello\nthere"}, "subject"),
    ({"subject": "Hello\rthere"}, "subject"),
    ({"fromName": "Acme\r\nBcc: victim@example.com"}, "fromName"),
    ({"fromName": "f" * 201}, "fromName"),
    ({"fromEmail": "not-an-address"}, "fromEmail"),
    ({"fromEmail": "news@acme.example.com\nBcc: victim@example.com"}, "fromEmail"),
    ({"fromEmail": "news@acme.example.com\r"}, "fromEmail"),
    ({"audience": {"type": "STATUS"}}, "audience.statuses"),
    ({"audience": {"type": "STATUS", "statuses": []}}, "audience.statuses"),
    ({"audience": {"type": "STATUS", "statuses": ["LEAD", "NOT_A_STATUS"]}}, "audience.statuses"),
    ({"audience": {"type": "SOME"}}, "audience.type"),
    ({"audience": {}}, "audience.type"),
    ({"audience": None}, "audience"),
    ({"htmlBody": "<p>" + "x" * (1024 * 1024) + "</p>"}, "htmlBody"),
    ({"textBody": BIG}, "textBody"),
    ({"htmlBody": "<p>a\x00b</p>"}, "htmlBody"),
    ({"textBody": "a\x00b"}, "textBody"),
    ({"bogus": 1}, "bogus"),
    ({"name": 12}, "name"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID)
def test_invalid_campaigns_answer_422_naming_the_field(client, admin, overrides, field):
    body = campaign_body(**overrides)
    for key in [k for k, v in overrides.items() if v is None and k in ("name", "subject")]:
        del body[key]  # a required field left out
    created = client.post(f"{API}/campaigns", json=body, headers=admin.headers)
    assert_field_error(created, field)

    draft = create_campaign(client, admin)
    url = f"{API}/campaigns/{draft['id']}"
    patched = client.patch(url, json=overrides, headers=admin.headers)
    assert_field_error(patched, field)
    assert_field_error(client.put(url, json=body, headers=admin.headers), field)
    assert client.get(url, headers=admin.headers).json() == draft  # nothing changed


@pytest.mark.parametrize(
    ("field", "text", "named"),
    [
        ("subject", "Hi {{password}}", "{{password}}"),
        ("subject", "Hi {{unsubscribeUrl}}", "{{unsubscribeUrl}}"),  # a body-only placeholder
        ("htmlBody", "<p>{{ first_name }}</p>", "{{ first_name }}"),
        ("htmlBody", "<p>{{firstName}} {{__class__}}</p>", "{{__class__}}"),
        ("textBody", "Hello {{7*7}}", "{{7*7}}"),
    ],
)
def test_unknown_placeholders_are_refused_naming_them(client, admin, field, text, named):
    response = client.post(
        f"{API}/campaigns", json=campaign_body(**{field: text}), headers=admin.headers
    )
    error = assert_field_error(response, field, code="unknown_placeholder")
    assert named in error["message"]


def test_known_placeholders_with_fallbacks_are_accepted(client, admin):
    created = create_campaign(
        client,
        admin,
        subject="{{firstName|there}}, news from {{companyName}} for {{email}}",
        htmlBody="<p>{{firstName|Friend}} {{lastName}}</p><a href='{{unsubscribeUrl}}'>x</a>",
        textBody="{{ firstName | there }} {{unsubscribeUrl}}",
    )
    assert created["subject"].startswith("{{firstName|there}}")


def test_a_lone_surrogate_is_refused_not_stored(client, admin):
    raw = '{"name": "N", "subject": "S", "htmlBody": "<p>\\ud800</p>"}'
    response = client.post(
        f"{API}/campaigns",
        content=raw,
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


def test_a_huge_request_body_is_refused_without_a_500(client, admin):
    body = campaign_body(htmlBody="x" * (9 * 1024 * 1024))
    response = client.post(f"{API}/campaigns", json=body, headers=admin.headers)
    assert response.status_code in (413, 422), response.text
    assert "error" in response.json()


def test_statuses_are_checked_against_the_callers_org(client, runtime, admin):
    created = create_campaign(
        client, admin, audience={"type": "STATUS", "statuses": ["PROSPECT", "inactive"]}
    )
    assert created["audience"] == {"type": "STATUS", "statuses": ["PROSPECT", "INACTIVE"]}
    # a status that only another org has is not one of this org's statuses
    other = caller(client, runtime)
    with unit_of_work(runtime.sessions) as session:
        session.add(ContactStatus(org_id=other.org_id, name="VIP", position=9))
    ok = create_campaign(client, other, audience={"type": "STATUS", "statuses": ["VIP"]})
    assert ok["audience"]["statuses"] == ["VIP"]
    refused = client.post(
        f"{API}/campaigns",
        json=campaign_body(audience={"type": "STATUS", "statuses": ["VIP"]}),
        headers=admin.headers,
    )
    assert_field_error(refused, "audience.statuses")


# --- only a DRAFT changes ---


@pytest.mark.parametrize("status", ["SENDING", "SENT", "FAILED"])
def test_only_a_draft_is_editable_or_deletable(client, runtime, admin, status):
    campaign_id = insert_campaign(runtime, admin.org_id, status, recipients=3, delivered=1)
    url = f"{API}/campaigns/{campaign_id}"
    before = client.get(url, headers=admin.headers).json()
    assert before["status"] == status
    assert_error(
        client.patch(url, json={"name": "Changed"}, headers=admin.headers), 409, "not_draft"
    )
    assert_error(client.put(url, json=campaign_body(), headers=admin.headers), 409, "not_draft")
    assert_error(client.delete(url, headers=admin.headers), 409, "not_draft")
    assert client.get(url, headers=admin.headers).json() == before


# --- duplicate ---


@pytest.mark.parametrize("status", ["DRAFT", "SENDING", "SENT", "FAILED"])
def test_duplicate_is_a_fresh_draft_with_the_same_content(client, runtime, admin, status):
    source_id = insert_campaign(
        runtime, admin.org_id, status, recipients=10, delivered=8, failed=1, unknown=1, opens=4,
        failure_reason="SMTP is not configured." if status == "FAILED" else None,
    )  # fmt: skip
    source = client.get(f"{API}/campaigns/{source_id}", headers=admin.headers).json()
    response = client.post(f"{API}/campaigns/{source_id}/duplicate", headers=admin.headers)
    assert response.status_code == 201, response.text
    copy = response.json()
    assert set(copy) == FIELDS
    assert copy["id"] != source["id"]
    assert copy["name"] == "Launched news (copy)"
    assert copy["status"] == "DRAFT"
    for key in (
        "fromName", "fromEmail", "subject", "htmlBody", "textBody", "audience", "trackOpens",
        "trackClicks",
    ):  # fmt: skip
        assert copy[key] == source[key], key
    counts = ("recipients", "delivered", "failed", "unknown", "opens", "pending")
    assert [copy[k] for k in counts] == [0] * len(counts)
    assert copy["openRate"] == 0
    assert copy["launchedAt"] is None and copy["completedAt"] is None
    assert copy["failureReason"] is None
    assert client.get(f"{API}/campaigns/{copy['id']}", headers=admin.headers).json() == copy
    # the copy is editable
    assert (
        client.patch(
            f"{API}/campaigns/{copy['id']}", json={"name": "Mine"}, headers=admin.headers
        ).status_code
        == 200
    )


def test_duplicate_of_a_long_name_still_fits(client, admin):
    source = create_campaign(client, admin, name="n" * 200)
    copy = client.post(f"{API}/campaigns/{source['id']}/duplicate", headers=admin.headers).json()
    assert len(copy["name"]) == 200
    assert copy["name"].endswith(" (copy)")


# --- launch ---


def arrange_contacts(runtime, org_id: uuid.UUID) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    emails = {
        "lead": f"lead-{tag}@example.com",
        "prospect": f"prospect-{tag}@example.com",
        "customer": f"customer-{tag}@example.com",
        "opted_out": f"out-{tag}@example.com",
    }
    add_contact(runtime, org_id, emails["lead"], status="LEAD")
    add_contact(runtime, org_id, emails["prospect"], status="PROSPECT")
    add_contact(runtime, org_id, emails["customer"], status="CUSTOMER")
    add_contact(runtime, org_id, emails["opted_out"], status="LEAD", opted_out=True)
    add_contact(runtime, org_id, None, status="LEAD")  # no email: never mailed
    return emails


def sends_of(runtime, campaign_id: str) -> list[MarketingSend]:
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = list(
            session.scalars(
                select(MarketingSend).where(MarketingSend.campaign_id == uuid.UUID(campaign_id))
            )
        )
        session.expunge_all()
        return rows


def test_launch_queues_one_send_per_eligible_contact(client, runtime, admin):
    emails = arrange_contacts(runtime, admin.org_id)
    configure_email(runtime, admin.org_id)
    other = caller(client, runtime)
    add_contact(runtime, other.org_id, f"elsewhere-{uuid.uuid4().hex[:6]}@example.com")
    audience = {"type": "STATUS", "statuses": ["LEAD", "PROSPECT"]}
    draft = create_campaign(client, admin, audience=audience)

    counted = client.post(
        f"{API}/audience/count", json={"audience": audience}, headers=admin.headers
    )
    assert counted.status_code == 200, counted.text
    assert counted.json() == {"recipients": 2}
    everyone = client.post(
        f"{API}/audience/count", json={"audience": {"type": "ALL"}}, headers=admin.headers
    )
    assert everyone.json() == {"recipients": 3}

    launched = client.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers)
    assert launched.status_code == 202, launched.text
    assert launched.json() == {"status": "SENDING", "recipients": 2}

    after = client.get(f"{API}/campaigns/{draft['id']}", headers=admin.headers).json()
    assert after["status"] == "SENDING"
    assert after["recipients"] == 2 and after["pending"] == 2
    assert after["launchedAt"] is not None
    sends = sends_of(runtime, draft["id"])
    assert sorted(s.email for s in sends) == sorted([emails["lead"], emails["prospect"]])
    assert all(s.status == "QUEUED" for s in sends)
    assert len({s.token for s in sends}) == 2

    again = client.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers)
    assert_error(again, 409, "not_draft")
    assert len(sends_of(runtime, draft["id"])) == 2
    assert_error(
        client.patch(f"{API}/campaigns/{draft['id']}", json={"name": "x"}, headers=admin.headers),
        409,
        "not_draft",
    )


def test_launch_to_nobody_is_sent_at_once(client, runtime, admin):
    configure_email(runtime, admin.org_id)
    draft = create_campaign(client, admin)
    launched = client.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers)
    assert launched.status_code == 202, launched.text
    assert launched.json() == {"status": "SENT", "recipients": 0}


def test_launch_without_smtp_fails_the_campaign_with_the_reason(client, runtime, admin):
    add_contact(runtime, admin.org_id, f"x-{uuid.uuid4().hex[:6]}@example.com")
    draft = create_campaign(client, admin)
    url = f"{API}/campaigns/{draft['id']}"
    response = client.post(f"{url}/launch", headers=admin.headers)
    error = assert_error(response, 409, "smtp_not_configured")
    assert "SMTP" in error["message"]
    after = client.get(url, headers=admin.headers).json()
    assert after["status"] == "FAILED"
    assert "SMTP" in after["failureReason"]
    assert after["recipients"] == 0
    assert sends_of(runtime, draft["id"]) == []
    assert_error(client.post(f"{url}/launch", headers=admin.headers), 409, "not_draft")
    assert_error(client.patch(url, json={"name": "x"}, headers=admin.headers), 409, "not_draft")
    assert_error(client.delete(url, headers=admin.headers), 409, "not_draft")


def test_two_launches_at_once_exactly_one_wins(client, runtime, admin, live_server):
    for i in range(5):
        add_contact(runtime, admin.org_id, f"race{i}-{uuid.uuid4().hex[:6]}@example.com")
    configure_email(runtime, admin.org_id)
    draft = create_campaign(client, admin)
    barrier = threading.Barrier(4)
    answers: list[httpx.Response] = []

    def launch() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as own:
            barrier.wait()
            answers.append(own.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers))

    threads = [threading.Thread(target=launch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.status_code for r in answers) == [202, 409, 409, 409], [r.text for r in answers]
    assert all(r.json()["error"]["code"] == "not_draft" for r in answers if r.status_code == 409)
    with unit_of_work(runtime.sessions, write=False) as session:
        count = session.scalar(
            select(func.count()).where(MarketingSend.campaign_id == uuid.UUID(draft["id"]))
        )
    assert count == 5
    assert get_campaign_row(runtime, uuid.UUID(draft["id"])).recipients == 5


def test_audience_count_validates_the_audience(client, admin):
    bad = client.post(
        f"{API}/audience/count",
        json={"audience": {"type": "STATUS", "statuses": ["NOPE"]}},
        headers=admin.headers,
    )
    assert_field_error(bad, "audience.statuses")
    assert_field_error(
        client.post(f"{API}/audience/count", json={}, headers=admin.headers), "audience"
    )


# --- stats ---


def test_stats_come_from_the_counters(client, runtime, admin):
    campaign_id = insert_campaign(
        runtime,
        admin.org_id,
        "SENDING",
        recipients=12,
        delivered=6,
        failed=2,
        unknown=1,
        cancelled=2,
        opens=3,
    )
    response = client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "SENDING",
        "recipients": 12,
        "delivered": 6,
        "failed": 2,
        "unknown": 1,
        "pending": 1,
        "cancelled": 2,
        "opens": 3,
        "openRate": 0.5,
        "bounced": 0,
        "complaints": 0,
        **NO_ENGAGEMENT,
    }
    full = client.get(f"{API}/campaigns/{campaign_id}", headers=admin.headers).json()
    assert (full["openRate"], full["pending"], full["unknown"]) == (0.5, 1, 1)


def test_open_rate_is_zero_when_nothing_was_delivered(client, runtime, admin):
    campaign_id = insert_campaign(runtime, admin.org_id, "SENT", recipients=2, failed=2)
    stats = client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers).json()
    assert set(stats) == STATS_FIELDS
    assert (stats["openRate"], stats["pending"], stats["failed"]) == (0, 0, 2)
    draft = create_campaign(client, admin)
    assert client.get(f"{API}/campaigns/{draft['id']}/stats", headers=admin.headers).json() == {
        "status": "DRAFT", "recipients": 0, "delivered": 0, "failed": 0, "unknown": 0,
        "pending": 0, "cancelled": 0, "opens": 0, "openRate": 0, "bounced": 0, "complaints": 0,
        **NO_ENGAGEMENT,
    }  # fmt: skip


# --- roles, licence, login ---


Call = tuple[str, str, dict[str, Any] | None]


def campaign_calls(campaign_id: str) -> tuple[list[Call], list[Call]]:
    url = f"{API}/campaigns/{campaign_id}"
    reads: list[Call] = [
        ("GET", f"{API}/campaigns", None),
        ("GET", url, None),
        ("GET", f"{url}/stats", None),
        ("GET", f"{url}/sends", None),
        ("GET", f"{url}/sends.csv", None),
    ]
    writes: list[Call] = [
        ("POST", f"{API}/campaigns", campaign_body()),
        ("PATCH", url, {"name": "Changed"}),
        ("PUT", url, campaign_body(name="Changed")),
        ("POST", f"{url}/launch", None),
        ("POST", f"{url}/duplicate", None),
        ("POST", f"{API}/audience/count", {"audience": {"type": "ALL"}}),
        ("POST", f"{API}/sends/1/resend", None),
        ("DELETE", url, None),
    ]
    return reads, writes


def test_manager_reads_but_cannot_write(client, runtime, admin):
    draft = create_campaign(client, admin)
    manager = caller(client, runtime, "MANAGER", org_id=admin.org_id)
    reads, writes = campaign_calls(draft["id"])
    for method, url, body in reads:
        response = client.request(method, url, json=body, headers=manager.headers)
        assert response.status_code == 200, (method, url, response.text)
    for method, url, body in writes:
        response = client.request(method, url, json=body, headers=manager.headers)
        error = assert_error(response, 403, "role_required")
        assert error["details"] == {"requiredRoles": ["ADMIN"]}, (method, url)
    assert client.get(f"{API}/campaigns/{draft['id']}", headers=admin.headers).json() == draft
    assert client.get(f"{API}/access", headers=manager.headers).json()["canWrite"] is False


def test_user_role_is_refused_everywhere(client, runtime, admin):
    draft = create_campaign(client, admin)
    user = caller(client, runtime, "USER", org_id=admin.org_id)
    reads, writes = campaign_calls(draft["id"])
    for method, url, body in reads + writes:
        response = client.request(method, url, json=body, headers=user.headers)
        assert_error(response, 403, "role_required")


def test_an_org_without_the_licence_is_refused(client, runtime):
    unlicensed = caller(client, runtime, features=())
    reads, writes = campaign_calls(str(uuid.uuid4()))
    for method, url, body in reads + writes:
        response = client.request(method, url, json=body, headers=unlicensed.headers)
        error = assert_error(response, 403, "feature_required")
        assert error["details"] == {"feature": "marketing"}


def test_no_token_is_401(client):
    reads, writes = campaign_calls(str(uuid.uuid4()))
    for method, url, body in reads + writes:
        assert_error(client.request(method, url, json=body), 401, "not_authenticated")


# --- tenancy ---


def test_another_orgs_campaign_answers_404_like_a_missing_one(client, runtime, admin):
    victim = caller(client, runtime)
    configure_email(runtime, victim.org_id)
    theirs = create_campaign(client, victim)
    _, writes = campaign_calls(theirs["id"])
    reads, _ = campaign_calls(theirs["id"])
    scoped = [c for c in reads + writes if theirs["id"] in c[1]]
    assert len(scoped) == 9
    for method, url, body in scoped:
        foreign = client.request(method, url, json=body, headers=admin.headers)
        assert_error(foreign, 404, "not_found")
        for missing_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
            absent = client.request(
                method, url.replace(theirs["id"], missing_id), json=body, headers=admin.headers
            )
            assert absent.status_code == 404, (method, url, absent.text)
            assert absent.json() == foreign.json()
    # untouched, still a DRAFT of its org
    assert client.get(f"{API}/campaigns/{theirs['id']}", headers=victim.headers).json() == theirs


PAGE_CSRF = "campaign-form-csrf"


def page_headers(who) -> dict[str, str]:
    """A browser's session cookies for ``who`` and a CSRF cookie matching PAGE_CSRF."""
    token = who.headers["Authorization"].removeprefix("Bearer ")
    return {"Accept": "text/html", "Cookie": f"herald_access={token}; herald_csrf={PAGE_CSRF}"}


def test_a_refused_edit_on_the_page_leaves_the_draft_as_it_was(client, admin):
    """The edit form checks every field before changing any: a valid new name next to a
    missing subject is not saved."""
    draft = create_campaign(client, admin)
    response = client.post(
        f"/marketing/campaigns/{draft['id']}/edit",
        data={"csrf_token": PAGE_CSRF, "name": "Renamed", "subject": "", "html_body": "<p>N</p>"},
        headers=page_headers(admin),
    )
    assert response.status_code == 422, response.text
    assert "subject is required" in response.text
    assert client.get(f"{API}/campaigns/{draft['id']}", headers=admin.headers).json() == draft


def test_the_forms_live_count_leaves_out_who_may_not_be_mailed(client, runtime, admin):
    arrange_contacts(runtime, admin.org_id)  # one opted out, one without an email
    count = client.post(
        "/marketing/audience-count.json",
        data={"csrf_token": PAGE_CSRF, "audience_type": "ALL"},
        headers=page_headers(admin),
    )
    assert count.json() == {"recipients": 3, "message": ""}
    leads = client.post(
        "/marketing/audience-count.json",
        data={"csrf_token": PAGE_CSRF, "audience_type": "STATUS", "statuses": "LEAD"},
        headers=page_headers(admin),
    )
    assert leads.json() == {"recipients": 1, "message": ""}
