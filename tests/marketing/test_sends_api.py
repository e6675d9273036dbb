"""The email log over the JSON API: listing and filtering sends, the streamed CSV export,
and resending a FAILED or UNKNOWN send."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import uuid

import httpx
import pytest

from tests.marketing.factories import (
    NO_ENGAGEMENT,
    add_contact,
    ago,
    assert_error,
    caller,
    configure_email,
    create_campaign,
    get_campaign_row,
    get_send,
    insert_campaign,
    insert_sends,
)

API = "/api/marketing"
SEND_FIELDS = {
    "id", "contactId", "email", "firstName", "lastName", "status", "error", "attempts",
    "deliveredAt", "openedAt", "bounceType", "bouncedAt", "complainedAt", "clickedAt", "machine",
    "machineReason",
}  # fmt: skip
CSV_HEADER = [
    "email", "firstName", "lastName", "status", "deliveredAt", "openedAt", "error", "bounceType",
    "bouncedAt", "complainedAt", "clickedAt", "machine",
]  # fmt: skip


def log_campaign(runtime, org_id: uuid.UUID) -> tuple[uuid.UUID, list[int]]:
    """A SENDING campaign of five sends: delivered, opened, failed, unknown and queued."""
    campaign_id = insert_campaign(
        runtime, org_id, "SENDING", recipients=5, delivered=2, failed=1, unknown=1, opens=1
    )
    delivered_at = ago(60)
    ids = insert_sends(
        runtime,
        org_id,
        campaign_id,
        [
            {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper",
             "status": "DELIVERED", "attempts": 1, "delivered_at": delivered_at,
             "opened_at": ago(30)},
            {"email": "alan@example.com", "first_name": "Alan", "last_name": "Turing",
             "status": "DELIVERED", "attempts": 2, "delivered_at": delivered_at},
            {"email": "gone@example.org", "first_name": "Kurt", "last_name": "Gödel",
             "status": "FAILED", "attempts": 1, "error": "550 5.1.1 No such user"},
            {"email": "maybe@example.org", "first_name": "Emmy", "last_name": "Noether",
             "status": "UNKNOWN", "attempts": 1, "error": "The worker stopped."},
            {"email": "later_100%@example.net", "first_name": "John", "last_name": "von Neumann",
             "status": "QUEUED"},
        ],
    )  # fmt: skip
    return campaign_id, ids


# --- the email log ---


def test_the_log_lists_sends_by_id_with_their_fields(client, runtime, admin):
    campaign_id, ids = log_campaign(runtime, admin.org_id)
    url = f"{API}/campaigns/{campaign_id}/sends"
    response = client.get(url, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["page"], body["pageSize"]) == (5, 1, 50)
    assert [s["id"] for s in body["items"]] == ids
    first = body["items"][0]
    assert set(first) == SEND_FIELDS
    assert (first["email"], first["firstName"], first["lastName"]) == (
        "grace@example.com",
        "Grace",
        "Hopper",
    )
    assert (first["status"], first["attempts"], first["error"]) == ("DELIVERED", 1, None)
    assert first["deliveredAt"].endswith(("Z", "+00:00")) and first["openedAt"]
    failed = body["items"][2]
    assert (failed["status"], failed["error"]) == ("FAILED", "550 5.1.1 No such user")
    assert failed["deliveredAt"] is None and failed["openedAt"] is None


def test_the_log_filters_by_status_and_search_and_paginates(client, runtime, admin):
    campaign_id, ids = log_campaign(runtime, admin.org_id)
    url = f"{API}/campaigns/{campaign_id}/sends"

    def listed(**params: object) -> dict:
        response = client.get(url, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        return response.json()

    delivered = listed(status="DELIVERED")
    assert [s["id"] for s in delivered["items"]] == ids[:2] and delivered["total"] == 2
    assert [s["id"] for s in listed(status="FAILED")["items"]] == [ids[2]]
    assert [s["id"] for s in listed(status="UNKNOWN")["items"]] == [ids[3]]
    assert [s["id"] for s in listed(status="QUEUED")["items"]] == [ids[4]]
    assert listed(status="SENDING")["total"] == 0

    assert [s["id"] for s in listed(q="TURING")["items"]] == [ids[1]]  # last name, any case
    assert [s["id"] for s in listed(q="grace")["items"]] == [ids[0]]  # first name
    assert [s["id"] for s in listed(q="example.org")["items"]] == ids[2:4]  # email
    assert [s["id"] for s in listed(q="100%")["items"]] == [ids[4]]  # % is literal
    assert listed(q="_00")["total"] == 0  # and so is _
    assert [s["id"] for s in listed(q="example.org", status="FAILED")["items"]] == [ids[2]]

    page = listed(page=2, pageSize=2)
    assert (page["total"], page["page"], page["pageSize"]) == (5, 2, 2)
    assert [s["id"] for s in page["items"]] == ids[2:4]
    assert listed(page=4, pageSize=2)["items"] == []

    for params, field in (
        ({"status": "OPENED"}, "status"),
        ({"status": "delivered"}, "status"),
        ({"pageSize": 501}, "pageSize"),
        ({"page": 0}, "page"),
        ({"q": "a\x00b"}, "q"),
    ):
        error = assert_error(
            client.get(url, params=params, headers=admin.headers), 422, "validation_error"
        )
        assert field in [d["field"] for d in error["details"]]


def test_the_log_of_a_launched_campaign_links_its_contacts(client, runtime, admin):
    contact_id = add_contact(
        runtime, admin.org_id, f"ann-{uuid.uuid4().hex[:6]}@example.com", first_name="Ann"
    )
    configure_email(runtime, admin.org_id)
    draft = create_campaign(client, admin)
    assert (
        client.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers).status_code
        == 202
    )
    items = client.get(f"{API}/campaigns/{draft['id']}/sends", headers=admin.headers).json()[
        "items"
    ]
    assert len(items) == 1
    assert (items[0]["contactId"], items[0]["firstName"], items[0]["status"]) == (
        str(contact_id),
        "Ann",
        "QUEUED",
    )
    assert (items[0]["attempts"], items[0]["error"]) == (0, None)


def test_deleting_a_contact_keeps_its_send_in_the_log_without_the_link(client, runtime, admin):
    tag = uuid.uuid4().hex[:6]
    gone = add_contact(runtime, admin.org_id, f"gone-{tag}@example.com", first_name="Gone")
    kept = add_contact(runtime, admin.org_id, f"kept-{tag}@example.com", first_name="Kept")
    configure_email(runtime, admin.org_id)
    draft = create_campaign(client, admin)
    launched = client.post(f"{API}/campaigns/{draft['id']}/launch", headers=admin.headers)
    assert launched.status_code == 202
    deleted = client.delete(f"/api/crm/contacts/{gone}", headers=admin.headers)
    assert deleted.status_code == 204
    items = client.get(f"{API}/campaigns/{draft['id']}/sends", headers=admin.headers).json()[
        "items"
    ]
    assert sorted((item["firstName"], item["contactId"]) for item in items) == [
        ("Gone", None),
        ("Kept", str(kept)),
    ]


def test_another_orgs_log_answers_404(client, runtime, admin):
    campaign_id, _ = log_campaign(runtime, admin.org_id)
    intruder = caller(client, runtime)
    for suffix in ("sends", "sends.csv"):
        foreign = client.get(f"{API}/campaigns/{campaign_id}/{suffix}", headers=intruder.headers)
        missing = client.get(f"{API}/campaigns/{uuid.uuid4()}/{suffix}", headers=intruder.headers)
        assert_error(foreign, 404, "not_found")
        assert foreign.json() == missing.json()


# --- CSV ---


def read_csv(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


def test_csv_lists_every_send_streamed_as_an_attachment(client, runtime, admin):
    campaign_id, _ = log_campaign(runtime, admin.org_id)
    response = client.get(f"{API}/campaigns/{campaign_id}/sends.csv", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "content-length" not in response.headers  # streamed
    assert response.headers["transfer-encoding"] == "chunked"
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="Launched-news-sends.csv"'

    rows = read_csv(response)
    assert rows[0] == CSV_HEADER
    assert len(rows) == 6
    grace = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert (grace["email"], grace["firstName"], grace["lastName"], grace["status"]) == (
        "grace@example.com",
        "Grace",
        "Hopper",
        "DELIVERED",
    )
    assert dt.datetime.fromisoformat(grace["deliveredAt"]).tzinfo is not None
    assert grace["openedAt"] and grace["error"] == ""
    gone = dict(zip(CSV_HEADER, rows[3], strict=True))
    assert (gone["lastName"], gone["status"], gone["error"]) == (
        "Gödel",
        "FAILED",
        "550 5.1.1 No such user",
    )
    assert gone["deliveredAt"] == "" and gone["openedAt"] == ""
    assert [r[0] for r in rows[1:]] == [
        "grace@example.com",
        "alan@example.com",
        "gone@example.org",
        "maybe@example.org",
        "later_100%@example.net",
    ]


def test_csv_neutralises_cells_a_spreadsheet_would_run(client, runtime, admin):
    campaign_id = insert_campaign(runtime, admin.org_id, "SENT", name="Ünïcode / news!")
    dangerous = ['=HYPERLINK("http://evil","x")', "+1+2", "-3", "@SUM(A1)", "\tTab", "\rCR"]
    insert_sends(
        runtime,
        admin.org_id,
        campaign_id,
        [
            {"email": f"d{i}@example.com", "first_name": value, "last_name": "Safe",
             "status": "FAILED", "error": value}
            for i, value in enumerate(dangerous)
        ] + [{"email": "plain@example.com", "first_name": "a=b", "last_name": "O'Brien",
              "status": "FAILED", "error": "550, \"quoted\"\nsecond line"}],
    )  # fmt: skip
    response = client.get(f"{API}/campaigns/{campaign_id}/sends.csv", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="n-code-news-sends.csv"'
    rows = [dict(zip(CSV_HEADER, r, strict=True)) for r in read_csv(response)[1:]]
    assert [r["firstName"] for r in rows[:-1]] == ["'" + v for v in dangerous]
    assert [r["error"] for r in rows[:-1]] == ["'" + v for v in dangerous]
    last = rows[-1]
    assert (last["firstName"], last["lastName"]) == ("a=b", "O'Brien")  # only a leading sign counts
    assert last["error"] == '550, "quoted"\nsecond line'  # quoted by the CSV, intact


def test_csv_reads_large_logs_in_pages_and_keeps_to_its_campaign(client, runtime, admin):
    campaign_id = insert_campaign(runtime, admin.org_id, "SENT", recipients=2345)
    ids = insert_sends(
        runtime,
        admin.org_id,
        campaign_id,
        [{"email": f"r{i:05d}@example.com", "status": "DELIVERED"} for i in range(2345)],
    )
    neighbour = insert_campaign(runtime, admin.org_id, "SENT")
    insert_sends(runtime, admin.org_id, neighbour, [{"email": "n@example.com", "status": "FAILED"}])
    with client.stream(
        "GET", f"{API}/campaigns/{campaign_id}/sends.csv", headers=admin.headers
    ) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == CSV_HEADER
    assert [row[0] for row in rows[1:]] == [f"r{i:05d}@example.com" for i in range(2345)]
    assert len(ids) == 2345


def test_csv_of_a_draft_is_just_the_header(client, admin):
    draft = create_campaign(client, admin)
    response = client.get(f"{API}/campaigns/{draft['id']}/sends.csv", headers=admin.headers)
    assert response.status_code == 200
    assert read_csv(response) == [CSV_HEADER]


# --- resend ---


def test_resend_requeues_a_failed_send_and_moves_the_counters(client, runtime, admin):
    campaign_id, ids = log_campaign(runtime, admin.org_id)
    failed_id = ids[2]
    before = client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers).json()
    response = client.post(f"{API}/sends/{failed_id}/resend", headers=admin.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == SEND_FIELDS
    assert (body["id"], body["status"]) == (failed_id, "QUEUED")
    assert body["error"] == "550 5.1.1 No such user"  # kept until the new outcome

    row = get_send(runtime, failed_id)
    assert row.status == "QUEUED"
    assert row.first_attempt_at is None
    assert row.lease_owner is None and row.lease_expires_at is None
    assert abs((row.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60

    after = client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers).json()
    assert after["failed"] == before["failed"] - 1
    assert after["pending"] == before["pending"] + 1
    assert (after["delivered"], after["unknown"], after["recipients"]) == (
        before["delivered"],
        before["unknown"],
        before["recipients"],
    )
    # now QUEUED: a second resend is a conflict and moves nothing
    again = client.post(f"{API}/sends/{failed_id}/resend", headers=admin.headers)
    error = assert_error(again, 409, "not_resendable")
    assert error["details"] == {"status": "QUEUED"}
    assert client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers).json() == after


def test_resend_of_an_unknown_send_in_a_sent_campaign_keeps_it_sent(client, runtime, admin):
    campaign_id = insert_campaign(
        runtime, admin.org_id, "SENT", recipients=2, delivered=1, unknown=1
    )
    ids = insert_sends(
        runtime,
        admin.org_id,
        campaign_id,
        [
            {"email": "a@example.com", "status": "DELIVERED", "attempts": 1},
            {"email": "b@example.com", "status": "UNKNOWN", "attempts": 1, "error": "Worker died."},
        ],
    )
    response = client.post(f"{API}/sends/{ids[1]}/resend", headers=admin.headers)
    assert response.status_code == 202, response.text
    stats = client.get(f"{API}/campaigns/{campaign_id}/stats", headers=admin.headers).json()
    assert stats == {
        "status": "SENT", "recipients": 2, "delivered": 1, "failed": 0, "unknown": 0,
        "pending": 1, "cancelled": 0, "opens": 0, "openRate": 0, "bounced": 0, "complaints": 0,
        **NO_ENGAGEMENT,
    }  # fmt: skip
    assert get_campaign_row(runtime, campaign_id).completed_at is not None


@pytest.mark.parametrize("status", ["QUEUED", "SENDING", "DELIVERED"])
def test_only_failed_or_unknown_sends_can_be_resent(client, runtime, admin, status):
    campaign_id = insert_campaign(
        runtime, admin.org_id, "SENDING", recipients=1, delivered=int(status == "DELIVERED")
    )
    [send_id] = insert_sends(
        runtime, admin.org_id, campaign_id, [{"email": "a@example.com", "status": status}]
    )
    before = get_campaign_row(runtime, campaign_id)
    error = assert_error(
        client.post(f"{API}/sends/{send_id}/resend", headers=admin.headers), 409, "not_resendable"
    )
    assert error["details"] == {"status": status}
    assert get_send(runtime, send_id).status == status
    after = get_campaign_row(runtime, campaign_id)
    assert (after.delivered, after.failed, after.unknown) == (
        before.delivered,
        before.failed,
        before.unknown,
    )


def test_two_resends_at_once_requeue_and_count_once(client, runtime, admin, live_server):
    campaign_id = insert_campaign(runtime, admin.org_id, "SENT", recipients=1, failed=1)
    [send_id] = insert_sends(
        runtime, admin.org_id, campaign_id, [{"email": "a@example.com", "status": "FAILED"}]
    )
    barrier = threading.Barrier(3)
    answers: list[int] = []

    def resend() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as own:
            barrier.wait()
            answers.append(
                own.post(f"{API}/sends/{send_id}/resend", headers=admin.headers).status_code
            )

    threads = [threading.Thread(target=resend) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [202, 409, 409]
    assert get_campaign_row(runtime, campaign_id).failed == 0


def test_resend_of_another_orgs_send_answers_404(client, runtime, admin):
    campaign_id, ids = log_campaign(runtime, admin.org_id)
    intruder = caller(client, runtime)
    foreign = client.post(f"{API}/sends/{ids[2]}/resend", headers=intruder.headers)
    assert_error(foreign, 404, "not_found")
    for missing in ("999999999999", "abc", "-1", "0", str(2**70), "1.5"):
        absent = client.post(f"{API}/sends/{missing}/resend", headers=intruder.headers)
        assert absent.status_code == 404, (missing, absent.text)
        assert absent.json() == foreign.json()
    assert get_send(runtime, ids[2]).status == "FAILED"
    assert get_campaign_row(runtime, campaign_id).failed == 1


def test_a_manager_reads_the_log_but_cannot_resend(client, runtime, admin):
    campaign_id, ids = log_campaign(runtime, admin.org_id)
    manager = caller(client, runtime, "MANAGER", org_id=admin.org_id)
    assert (
        client.get(f"{API}/campaigns/{campaign_id}/sends", headers=manager.headers).status_code
        == 200
    )
    assert (
        client.get(f"{API}/campaigns/{campaign_id}/sends.csv", headers=manager.headers).status_code
        == 200
    )
    assert_error(
        client.post(f"{API}/sends/{ids[2]}/resend", headers=manager.headers), 403, "role_required"
    )
    assert get_send(runtime, ids[2]).status == "FAILED"
