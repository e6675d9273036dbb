"""Schedule, unschedule, pause, resume and cancel over the JSON API: the transitions, their
409 and 422 answers, what a cancel does to the sends and the counters, the audit log, and
who may call them. (The workers' side, with real SMTP: tests/reliability/.)"""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from herald.db import utcnow
from tests.marketing.engine import assert_counters_match_sends, sends
from tests.marketing.factories import (
    assert_error,
    assert_field_error,
    caller,
    configure_email,
    create_campaign,
    get_campaign_row,
    insert_campaign,
    insert_sends,
)

API = "/api/marketing"


@pytest.fixture
def admin(client, runtime):
    who = caller(client, runtime)
    configure_email(runtime, who.org_id)
    return who


def url(campaign_id: object, action: str = "") -> str:
    return f"{API}/campaigns/{campaign_id}" + (f"/{action}" if action else "")


def at(**delta: float) -> str:
    return (utcnow() + dt.timedelta(**delta)).isoformat()


def audit_actions(client, headers) -> list[str]:  # type: ignore[no-untyped-def]
    items = client.get("/api/settings/audit", headers=headers, params={"pageSize": 500}).json()
    return [e["action"] for e in items["items"]]


def sending(runtime, org_id, queued: int = 3, in_flight: int = 1, delivered: int = 2):  # type: ignore[no-untyped-def]
    """A SENDING campaign as workers would have left it mid-way, with its sends."""
    total = queued + in_flight + delivered
    campaign_id = insert_campaign(runtime, org_id, "SENDING", recipients=total, delivered=delivered)
    rows = (
        [{"email": f"q{i}@example.com", "status": "QUEUED"} for i in range(queued)]
        + [{"email": f"f{i}@example.com", "status": "SENDING"} for i in range(in_flight)]
        + [{"email": f"d{i}@example.com", "status": "DELIVERED"} for i in range(delivered)]
    )
    insert_sends(runtime, org_id, campaign_id, rows)
    return campaign_id


# --- schedule / unschedule ---


def test_schedule_then_unschedule(client, runtime, admin):
    draft = create_campaign(client, admin)
    when = at(hours=2)
    response = client.post(url(draft["id"], "schedule"), json={"at": when}, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "SCHEDULED"
    assert dt.datetime.fromisoformat(body["scheduledAt"]) == dt.datetime.fromisoformat(when)
    assert body["launchedAt"] is None and body["recipients"] == 0
    # only a DRAFT is edited, scheduled or launched
    assert_error(
        client.patch(url(draft["id"]), json={"name": "x"}, headers=admin.headers), 409, "not_draft"
    )
    again = client.post(url(draft["id"], "schedule"), json={"at": when}, headers=admin.headers)
    assert_error(again, 409, "not_draft")
    assert_error(client.post(url(draft["id"], "launch"), headers=admin.headers), 409, "not_draft")

    back = client.post(url(draft["id"], "unschedule"), headers=admin.headers)
    assert back.status_code == 200, back.text
    assert (back.json()["status"], back.json()["scheduledAt"]) == ("DRAFT", None)
    assert_error(
        client.post(url(draft["id"], "unschedule"), headers=admin.headers), 409, "not_scheduled"
    )
    assert audit_actions(client, admin.headers)[:2] == [
        "campaign.unscheduled",
        "campaign.scheduled",
    ]


def test_a_time_without_an_offset_is_utc(client, admin):
    draft = create_campaign(client, admin)
    naive = (utcnow() + dt.timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    response = client.post(
        url(draft["id"], "schedule"), json={"at": naive.isoformat()}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert dt.datetime.fromisoformat(response.json()["scheduledAt"]) == naive.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "when",
    [at(minutes=-1), at(seconds=-0.5), at(days=366), "2020-01-01T00:00:00Z"],
    ids=["past", "just-past", "over-a-year", "long-ago"],
)
def test_schedule_refuses_a_time_not_in_the_coming_year(client, runtime, admin, when):
    draft = create_campaign(client, admin)
    response = client.post(url(draft["id"], "schedule"), json={"at": when}, headers=admin.headers)
    assert_field_error(response, "at")
    assert get_campaign_row(runtime, uuid.UUID(draft["id"])).status == "DRAFT"


@pytest.mark.parametrize("body", [{}, {"at": "tomorrow"}, {"at": 17}, {"at": None}])
def test_schedule_refuses_what_is_not_a_time(client, admin, body):
    draft = create_campaign(client, admin)
    response = client.post(url(draft["id"], "schedule"), json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_schedule_without_smtp_is_refused_and_changes_nothing(client, runtime):
    unconfigured = caller(client, runtime)
    draft = create_campaign(client, unconfigured)
    response = client.post(
        url(draft["id"], "schedule"), json={"at": at(hours=1)}, headers=unconfigured.headers
    )
    assert_error(response, 422, "smtp_not_configured")
    row = get_campaign_row(runtime, uuid.UUID(draft["id"]))
    assert (row.status, row.failure_reason, row.scheduled_at) == ("DRAFT", None, None)


@pytest.mark.parametrize("status", ["SENDING", "SENT", "FAILED", "PAUSED", "CANCELLED"])
def test_only_a_draft_is_scheduled(client, runtime, admin, status):
    campaign_id = insert_campaign(runtime, admin.org_id, status)
    response = client.post(
        url(campaign_id, "schedule"), json={"at": at(hours=1)}, headers=admin.headers
    )
    error = assert_error(response, 409, "not_draft")
    assert error["details"] == {"status": status}


# --- pause / resume ---


def test_pause_then_resume(client, runtime, admin):
    campaign_id = sending(runtime, admin.org_id)
    paused = client.post(url(campaign_id, "pause"), headers=admin.headers)
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["status"] == "PAUSED" and body["pausedAt"]
    me = client.get("/api/auth/me", headers=admin.headers).json()
    assert body["pauseReason"] == f"Paused by {me['user']['email']}."
    assert_error(client.post(url(campaign_id, "pause"), headers=admin.headers), 409, "not_sending")

    resumed = client.post(url(campaign_id, "resume"), headers=admin.headers)
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["pauseReason"]) == ("SENDING", None)
    assert resumed.json()["pausedAt"] is None
    assert_error(client.post(url(campaign_id, "resume"), headers=admin.headers), 409, "not_paused")
    assert audit_actions(client, admin.headers)[:2] == ["campaign.resumed", "campaign.paused"]


def test_resuming_a_campaign_with_nothing_left_makes_it_sent(client, runtime, admin):
    campaign_id = insert_campaign(runtime, admin.org_id, "PAUSED", recipients=2, delivered=2)
    resumed = client.post(url(campaign_id, "resume"), headers=admin.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "SENT" and resumed.json()["completedAt"]


@pytest.mark.parametrize("status", ["DRAFT", "SCHEDULED", "SENT", "FAILED", "CANCELLED"])
def test_only_a_sending_campaign_is_paused(client, runtime, admin, status):
    campaign_id = insert_campaign(runtime, admin.org_id, status)
    assert_error(client.post(url(campaign_id, "pause"), headers=admin.headers), 409, "not_sending")
    assert_error(client.post(url(campaign_id, "resume"), headers=admin.headers), 409, "not_paused")
    assert get_campaign_row(runtime, campaign_id).status == status


def test_a_pause_and_a_cancel_at_once_one_wins(client, runtime, admin):
    campaign_id = sending(runtime, admin.org_id)

    def act(action: str) -> int:
        return client.post(url(campaign_id, action), headers=admin.headers).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(act, ["pause", "cancel"]))
    final = get_campaign_row(runtime, campaign_id).status
    # pause first then cancel both succeed (PAUSED can be cancelled); cancel first: pause 409
    assert final == "CANCELLED"
    assert sorted(answers) in ([200, 200], [200, 409])


# --- cancel ---


def test_cancel_sends_nothing_more_and_counts_what_is_not_sent(client, runtime, admin):
    campaign_id = sending(runtime, admin.org_id, queued=3, in_flight=1, delivered=2)
    response = client.post(url(campaign_id, "cancel"), headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["cancelled"], body["pending"]) == ("CANCELLED", 3, 1)
    assert body["completedAt"]
    statuses = sorted(s.status for s in sends(runtime, campaign_id))
    assert statuses == ["CANCELLED"] * 3 + ["DELIVERED"] * 2 + ["SENDING"]  # in flight: goes on
    stats = client.get(url(campaign_id, "stats"), headers=admin.headers).json()
    assert (stats["status"], stats["cancelled"], stats["delivered"]) == ("CANCELLED", 3, 2)
    log = client.get(
        url(campaign_id, "sends"), params={"status": "CANCELLED"}, headers=admin.headers
    )
    assert log.json()["total"] == 3
    assert {s["status"] for s in log.json()["items"]} == {"CANCELLED"}
    assert_error(
        client.post(url(campaign_id, "cancel"), headers=admin.headers),
        409,
        "not_scheduled_or_sending_or_paused",
    )
    assert_error(client.post(url(campaign_id, "resume"), headers=admin.headers), 409, "not_paused")
    copy = client.post(url(campaign_id, "duplicate"), headers=admin.headers)
    assert copy.status_code == 201 and copy.json()["status"] == "DRAFT"
    event = client.get("/api/settings/audit", headers=admin.headers).json()["items"][0]
    assert (event["action"], event["details"]) == ("campaign.cancelled", {"notSent": 3})


def test_a_paused_or_scheduled_campaign_can_be_cancelled(client, runtime, admin):
    paused = sending(runtime, admin.org_id, queued=2, in_flight=0, delivered=1)
    client.post(url(paused, "pause"), headers=admin.headers)
    body = client.post(url(paused, "cancel"), headers=admin.headers).json()
    assert (body["status"], body["cancelled"], body["pending"]) == ("CANCELLED", 2, 0)
    assert_counters_match_sends(runtime, paused)

    draft = create_campaign(client, admin)
    client.post(url(draft["id"], "schedule"), json={"at": at(hours=1)}, headers=admin.headers)
    body = client.post(url(draft["id"], "cancel"), headers=admin.headers).json()
    assert (body["status"], body["cancelled"], body["recipients"]) == ("CANCELLED", 0, 0)


@pytest.mark.parametrize("status", ["DRAFT", "SENT", "FAILED"])
def test_only_a_scheduled_sending_or_paused_campaign_is_cancelled(client, runtime, admin, status):
    campaign_id = insert_campaign(runtime, admin.org_id, status)
    response = client.post(url(campaign_id, "cancel"), headers=admin.headers)
    assert_error(response, 409, "not_scheduled_or_sending_or_paused")


def test_a_cancelled_campaigns_failed_send_is_not_resent(client, runtime, admin):
    campaign_id = insert_campaign(
        runtime, admin.org_id, "CANCELLED", recipients=2, failed=1, cancelled=1
    )
    [failed, _] = insert_sends(
        runtime,
        admin.org_id,
        campaign_id,
        [
            {"email": "f@example.com", "status": "FAILED"},
            {"email": "c@example.com", "status": "CANCELLED"},
        ],
    )
    response = client.post(f"{API}/sends/{failed}/resend", headers=admin.headers)
    assert_error(response, 409, "campaign_cancelled")


# --- who may ---


@pytest.mark.parametrize("action", ["schedule", "unschedule", "pause", "resume", "cancel"])
def test_a_manager_may_not(client, runtime, admin, action):
    manager = caller(client, runtime, "MANAGER", org_id=admin.org_id)
    campaign_id = sending(runtime, admin.org_id)
    body = {"at": at(hours=1)} if action == "schedule" else None
    response = client.post(url(campaign_id, action), json=body, headers=manager.headers)
    assert_error(response, 403, "role_required")
    assert get_campaign_row(runtime, campaign_id).status == "SENDING"
