"""The bounce reports API, the contact's emailStatus and the bounce settings over HTTP."""

from __future__ import annotations

import pytest

from herald.db import unit_of_work
from tests.bounces.factories import (
    bounce,
    bounce_org,
    contact,
    contact_row,
    delivered_campaign,
    receive,
)
from tests.marketing.factories import assert_error, get_send
from tests.orgs.factories import login, make_user

API = "/api/marketing/bounces"


def headers_for(client, runtime, org, role="ADMIN"):
    return login(client, make_user(runtime, org.org_id, role))


def test_the_list_shows_the_orgs_reports_newest_first_and_filters_by_type(client, runtime):
    org = bounce_org(runtime)
    people = [contact(runtime, org) for _ in range(2)]
    campaign_id, sends = delivered_campaign(runtime, org, people)
    bounce(runtime, org, sends[0], people[0].email)
    receive(runtime, org, b"Subject: hello\r\n\r\nNot a bounce.\r\n")
    admin = headers_for(client, runtime, org)
    manager = headers_for(client, runtime, org, "MANAGER")

    listed = client.get(API, headers=manager)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 2 and body["page"] == 1
    newest, oldest = body["items"]
    assert newest["type"] == "ignored"
    assert set(oldest) == {
        "id", "receivedAt", "type", "email", "sendId", "campaignId", "reason", "source",
    }  # fmt: skip
    assert (oldest["type"], oldest["sendId"], oldest["campaignId"], oldest["source"]) == (
        "hard",
        sends[0],
        str(campaign_id),
        "smtp",
    )
    hard = client.get(API, params={"type": "hard"}, headers=admin).json()
    assert [r["id"] for r in hard["items"]] == [oldest["id"]]
    assert client.get(API, params={"type": "bogus"}, headers=admin).status_code == 422
    # another org sees none of it
    other = bounce_org(runtime)
    assert client.get(API, headers=headers_for(client, runtime, other)).json()["total"] == 0


def test_the_raw_report_is_the_bytes_as_received_for_an_admin_only(client, runtime):
    org = bounce_org(runtime)
    raw = b"From: MAILER-DAEMON@x.example\r\nSubject: <script>alert(1)</script>\r\n\r\nbody\r\n"
    (report,) = receive(runtime, org, raw).reports
    url = f"{API}/{report.id}/raw"

    shown = client.get(url, headers=headers_for(client, runtime, org))
    assert shown.status_code == 200
    assert shown.content == raw
    assert shown.headers["content-type"].startswith("text/plain")
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.headers["x-herald-report-size"] == str(len(raw))
    assert_error(
        client.get(url, headers=headers_for(client, runtime, org, "MANAGER")), 403, "role_required"
    )
    other = bounce_org(runtime)
    assert_error(client.get(url, headers=headers_for(client, runtime, other)), 404, "not_found")


def test_an_admin_adds_a_bounce_by_api_it_applies_like_any_and_is_audited(client, runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    admin = headers_for(client, runtime, org)
    body = {"email": person.email.upper(), "type": "hard", "reason": "Told by phone: left."}

    added = client.post(API, json=body, headers=admin)

    assert added.status_code == 201, added.text
    report = added.json()
    assert (report["type"], report["sendId"], report["source"]) == ("hard", send_id, "api")
    assert get_send(runtime, send_id).status == "BOUNCED"
    assert contact_row(runtime, person.id).email_status == "BOUNCED"
    again = client.post(API, json=body, headers=admin)  # a retry: counted once
    assert again.status_code == 200 and again.json()["id"] == report["id"]
    raw = client.get(f"{API}/{report['id']}/raw", headers=admin)
    assert "Told by phone" in raw.text
    audit = client.get("/api/settings/audit", headers=admin).json()["items"]
    added = [e for e in audit if e["action"] == "bounce.added"]
    assert len(added) == 1, "the retry added nothing, so it is not audited"
    assert added[0]["details"]["type"] == "hard"


def test_the_same_api_bounce_after_each_campaign_counts_for_each(client, runtime):
    org = bounce_org(runtime, soft_bounce_limit=3)
    person = contact(runtime, org)
    admin = headers_for(client, runtime, org)
    body = {"email": person.email, "type": "soft", "reason": "Mailbox full, says the client."}
    sends = []
    for _ in range(3):
        _, (send_id,) = delivered_campaign(runtime, org, [person])
        sends.append(send_id)
        added = client.post(API, json=body, headers=admin)
        assert added.status_code == 201, added.text
        assert (added.json()["type"], added.json()["sendId"]) == ("soft", send_id)

    assert [get_send(runtime, s).status for s in sends] == ["BOUNCED"] * 3
    assert contact_row(runtime, person.id).email_status == "BOUNCED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an address", "type": "hard"}, "email"),
        ({"email": "a@example.com", "type": "ignored"}, "type"),
        ({"email": "a@example.com"}, "type"),
        ({"email": "a@example.com", "type": "soft", "reason": "x" * 2001}, "reason"),
    ],
)
def test_a_bad_bounce_is_a_422_and_records_nothing(client, runtime, body, field):
    org = bounce_org(runtime)
    admin = headers_for(client, runtime, org)
    response = client.post(API, json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert client.get(API, headers=admin).json()["total"] == 0


def test_a_manager_cannot_add_bounces(client, runtime):
    org = bounce_org(runtime)
    response = client.post(
        API,
        json={"email": "a@example.com", "type": "soft"},
        headers=headers_for(client, runtime, org, "MANAGER"),
    )
    assert_error(response, 403, "role_required")


def bounced_contact(runtime, org):
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    bounce(runtime, org, send_id, person.email)
    assert contact_row(runtime, person.id).email_status == "BOUNCED"
    return person


def test_the_contact_shows_its_email_status_and_only_an_admin_resets_it(client, runtime):
    org = bounce_org(runtime)
    person = bounced_contact(runtime, org)
    url = f"/api/crm/contacts/{person.id}"
    admin = headers_for(client, runtime, org)
    shown = client.get(url, headers=admin).json()
    assert shown["emailStatus"] == "BOUNCED" and "User unknown" in shown["emailStatusReason"]
    assert shown["emailStatusAt"]

    for role in ("MANAGER", "USER"):
        refused = client.patch(
            url, json={"emailStatus": "OK"}, headers=headers_for(client, runtime, org, role)
        )
        assert_error(refused, 403, "role_required")
    assert_error(
        client.patch(url, json={"emailStatus": "BOUNCED"}, headers=admin), 422, "validation_error"
    )
    reset = client.patch(url, json={"emailStatus": "OK"}, headers=admin)

    assert reset.status_code == 200, reset.text
    assert reset.json()["emailStatus"] == "OK"
    event = client.get("/api/settings/audit", headers=admin).json()["items"][0]
    assert event["action"] == "contact.email_status_reset"
    assert event["details"]["emailStatus"] == {"from": "BOUNCED", "to": "OK"}


def test_a_new_address_makes_the_contact_ok_again(client, runtime):
    org = bounce_org(runtime)
    person = bounced_contact(runtime, org)
    manager = headers_for(client, runtime, org, "MANAGER")  # a CRM writer, not ADMIN
    changed = client.patch(
        f"/api/crm/contacts/{person.id}", json={"email": "new@example.net"}, headers=manager
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["emailStatus"] == "OK"
    assert "changed" in changed.json()["emailStatusReason"]


def test_a_launch_skips_contacts_whose_address_bounced_or_complained(client, runtime):
    org = bounce_org(runtime)
    bounced = bounced_contact(runtime, org)
    fine = contact(runtime, org)
    complained = contact(runtime, org)
    with unit_of_work(runtime.sessions) as session:
        row = session.get(type(complained), complained.id)
        row.email_status = "COMPLAINED"
    admin = headers_for(client, runtime, org)
    created = client.post(
        "/api/marketing/campaigns",
        json={"name": "Next", "subject": "Hi", "htmlBody": "<p>Hi</p>"},
        headers=admin,
    ).json()
    count = client.post(
        "/api/marketing/audience/count", json={"audience": {"type": "ALL"}}, headers=admin
    )
    assert count.json() == {"recipients": 1}
    launched = client.post(f"/api/marketing/campaigns/{created['id']}/launch", headers=admin)
    assert launched.json() == {"status": "SENDING", "recipients": 1}
    sent_to = client.get(f"/api/marketing/campaigns/{created['id']}/sends", headers=admin).json()
    assert [s["email"] for s in sent_to["items"]] == [fine.email]
    assert bounced.email not in str(sent_to)


def test_an_import_cannot_set_the_email_status(client, runtime):
    org = bounce_org(runtime)
    csv = b"email,emailStatus\nsomeone@example.net,OK\n"
    response = client.post(
        "/api/crm/contacts/import",
        files={"file": ("c.csv", csv, "text/csv")},
        headers=headers_for(client, runtime, org),
    )
    assert response.status_code == 422
    assert "emailStatus" in response.json()["error"]["message"]


# --- the bounce settings --------------------------------------------------------------


def settings_body(**overrides):
    body = {
        "host": "127.0.0.1",
        "port": 2525,
        "security": "none",
        "defaultFromEmail": "news@acme.example.com",
    }
    body.update(overrides)
    return body


def test_the_bounce_address_and_soft_bounce_limit_are_saved(client, runtime):
    org = bounce_org(runtime)
    admin = headers_for(client, runtime, org)
    saved = client.put(
        "/api/settings/email",
        json=settings_body(bounceAddress=" Bounces@Mail.Example.com ", softBounceLimit=5),
        headers=admin,
    )
    assert saved.status_code == 200, saved.text
    assert (saved.json()["bounceAddress"], saved.json()["softBounceLimit"]) == (
        "bounces@mail.example.com",
        5,
    )

    # left out of a PUT they stay, as the mailbox and the webhook keys do
    def put(**fields):
        return client.put("/api/settings/email", json=settings_body(**fields), headers=admin)

    kept = put()
    assert (kept.json()["bounceAddress"], kept.json()["softBounceLimit"]) == (
        "bounces@mail.example.com",
        5,
    )
    cleared = put(bounceAddress="")
    assert (cleared.json()["bounceAddress"], cleared.json()["softBounceLimit"]) == (None, 5)
    put(bounceAddress="b@x.example")
    assert put(bounceAddress=None).json()["bounceAddress"] is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bounceAddress": "b" * 38 + "@example.com"}, "bounceAddress"),  # no room for the tag
        ({"bounceAddress": "bounces+x@example.com"}, "bounceAddress"),
        ({"bounceAddress": "not-an-address"}, "bounceAddress"),
        ({"softBounceLimit": 0}, "softBounceLimit"),
        ({"softBounceLimit": 101}, "softBounceLimit"),
    ],
)
def test_a_bad_bounce_setting_is_a_422(client, runtime, overrides, field):
    org = bounce_org(runtime)
    response = client.put(
        "/api/settings/email",
        json=settings_body(**overrides),
        headers=headers_for(client, runtime, org),
    )
    error = assert_error(response, 422, "validation_error")
    assert field in [d["field"] for d in error["details"]]


def test_one_bounce_address_belongs_to_one_org(client, runtime):
    first, second = bounce_org(runtime), bounce_org(runtime)
    response = client.put(
        "/api/settings/email",
        json=settings_body(bounceAddress=first.bounce_address),
        headers=headers_for(client, runtime, second),
    )
    assert_error(response, 409, "bounce_address_taken")


def test_stats_count_bounced_and_complaints(client, runtime):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    campaign_id, (send_id,) = delivered_campaign(runtime, org, [person])
    bounce(runtime, org, send_id, person.email)
    admin = headers_for(client, runtime, org)
    stats = client.get(f"/api/marketing/campaigns/{campaign_id}/stats", headers=admin).json()
    assert (stats["delivered"], stats["failed"], stats["bounced"], stats["complaints"]) == (
        0,
        1,
        1,
        0,
    )
    log = client.get(
        f"/api/marketing/campaigns/{campaign_id}/sends", params={"status": "BOUNCED"}, headers=admin
    ).json()
    assert log["total"] == 1
    (row,) = log["items"]
    assert (row["status"], row["bounceType"]) == ("BOUNCED", "hard") and row["bouncedAt"]
    failed = client.get(
        f"/api/marketing/campaigns/{campaign_id}/sends", params={"status": "FAILED"}, headers=admin
    ).json()
    assert failed["total"] == 0  # the bounced send is counted in failed, but listed as BOUNCED
    csv = client.get(f"/api/marketing/campaigns/{campaign_id}/sends.csv", headers=admin).text
    header, line = csv.splitlines()[:2]
    # the contract's order: the bounce columns after error (then clickedAt, machine)
    assert header.split(",")[6:10] == ["error", "bounceType", "bouncedAt", "complainedAt"]
    assert ',"BOUNCED",' in line and ',"hard",' in line
