"""The audit log over the API: its shape, order, pages, org and roles, and each kind of
event, recorded by performing the action as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from herald.audit import service as audit
from herald.audit.models import AuditEvent
from herald.db import unit_of_work
from herald.orgs import service as orgs
from herald.orgs.models import User
from tests.conftest import free_port
from tests.orgs.factories import PASSWORD, SeededUser, login, make_org, make_user

HERALD = str(Path(sys.executable).with_name("herald"))
SMTP_PASSWORD = "smtp-Secret-9f2c1e"


@pytest.fixture
def admin(runtime) -> SeededUser:
    return make_user(runtime, make_org(runtime), "ADMIN")


def events(client: httpx.Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/api/settings/audit", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def actions(client: httpx.Client, headers: dict[str, str]) -> list[str]:
    return [e["action"] for e in events(client, headers, pageSize=500)["items"]]


def latest(client: httpx.Client, headers: dict[str, str], action: str) -> dict[str, Any]:
    found = [e for e in events(client, headers, pageSize=500)["items"] if e["action"] == action]
    assert found, f"no {action} event"
    return found[0]


def new_user(client: httpx.Client, headers: dict[str, str], role: str = "USER") -> dict:
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "p" * 12, "role": role}
    response = client.post("/api/settings/users", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_list_has_the_contract_shape_newest_first(client, admin):
    headers = login(client, admin)
    made = [new_user(client, headers)["email"] for _ in range(3)]
    body = events(client, headers)
    assert set(body) == {"items", "total", "page", "pageSize"}
    assert (body["page"], body["pageSize"]) == (1, 50)
    assert body["total"] == 5  # the admin's creation (by the factory), the login, three users
    first = body["items"][0]
    assert set(first) == {"id", "at", "actor", "action", "target", "details"}
    assert first["action"] == "user.created"
    assert first["actor"] == admin.email
    assert first["target"] == f"user {made[-1]}"
    assert first["details"] == {"role": "USER"}
    assert first["at"].endswith(("Z", "+00:00"))
    assert [e["target"] for e in body["items"]] == [
        *(f"user {email}" for email in reversed(made)),
        f"user {admin.email}",
        f"user {admin.email}",
    ]
    assert [e["action"] for e in body["items"]][-2:] == ["auth.login", "user.created"]


def test_pages_split_the_list_without_overlap(client, admin):
    headers = login(client, admin)
    for _ in range(4):
        new_user(client, headers)
    everything = [e["id"] for e in events(client, headers)["items"]]
    pages = [events(client, headers, page=n, pageSize=2) for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [6] * 4
    assert [e["id"] for p in pages for e in p["items"]] == everything
    assert pages[3]["items"] == []
    too_big = client.get("/api/settings/audit", headers=headers, params={"pageSize": 501})
    assert too_big.status_code == 422
    assert too_big.json()["error"]["details"][0]["field"] == "pageSize"
    bad = client.get("/api/settings/audit", headers=headers, params={"page": "x"})
    assert bad.status_code == 422


def test_each_org_sees_only_its_own_events(client, runtime, admin):
    headers = login(client, admin)
    victim_user = new_user(client, headers)["email"]
    other = login(client, make_user(runtime, make_org(runtime), "ADMIN"))
    seen = json.dumps(events(client, other, pageSize=500))
    assert victim_user not in seen and admin.email not in seen


@pytest.mark.parametrize("role", ["MANAGER", "USER"])
def test_only_an_admin_reads_the_log(client, runtime, role):
    headers = login(client, make_user(runtime, make_org(runtime), role))
    response = client.get("/api/settings/audit", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_required"


def test_logins_and_failed_logins_of_known_accounts(client, runtime, admin):
    headers = login(client, admin)
    wrong = client.post("/api/auth/login", json={"email": admin.email, "password": "nope-nope"})
    assert wrong.status_code == 401
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    client.post("/api/auth/login", json={"email": unknown, "password": "nope-nope"})

    failed = latest(client, headers, "auth.login_failed")
    assert failed["target"] == f"user {admin.email}"
    assert failed["details"]["reason"] == "invalid_credentials"
    assert failed["details"]["address"]
    assert "nope-nope" not in json.dumps(failed)
    ok = latest(client, headers, "auth.login")
    assert (ok["actor"], ok["target"]) == (admin.email, f"user {admin.email}")
    with unit_of_work(runtime.sessions, write=False) as session:
        assert not session.query(AuditEvent).filter(AuditEvent.target.contains(unknown)).count()


def test_mfa_setup_and_enable_are_recorded_without_the_secret(client, admin):
    headers = login(client, admin)
    setup = client.post("/api/auth/mfa/setup", headers=headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    code = pyotp.TOTP(secret).now()
    assert (
        client.post("/api/auth/mfa/enable", headers=headers, json={"code": code}).status_code == 200
    )
    log = events(client, headers)
    assert [e["action"] for e in log["items"][:2]] == ["auth.mfa_enabled", "auth.mfa_setup"]
    assert all(e["target"] == f"user {admin.email}" for e in log["items"][:2])
    assert secret not in json.dumps(log) and code not in json.dumps(log["items"][0])


def test_a_password_change_and_signing_out_everywhere(client, admin):
    headers = login(client, admin)
    changed = client.post(
        "/api/auth/password",
        headers=headers,
        json={"current": PASSWORD, "new": "another long password"},
    )
    assert changed.status_code == 200
    headers = {"Authorization": f"Bearer {changed.json()['accessToken']}"}
    assert latest(client, headers, "user.password_changed")["target"] == f"user {admin.email}"
    assert client.post("/api/auth/sessions/revoke", headers=headers).status_code == 204
    again = client.post(
        "/api/auth/login", json={"email": admin.email, "password": "another long password"}
    )
    headers = {"Authorization": f"Bearer {again.json()['accessToken']}"}
    log = events(client, headers)["items"]
    assert [e["action"] for e in log[:3]] == [
        "auth.login",
        "auth.sessions_revoked",
        "user.password_changed",
    ]
    assert "another long password" not in json.dumps(log)


def test_user_changes_by_an_admin(client, admin):
    headers = login(client, admin)
    user = new_user(client, headers)
    url = f"/api/settings/users/{user['id']}"
    assert client.patch(url, headers=headers, json={"role": "MANAGER"}).status_code == 200
    assert client.patch(url, headers=headers, json={"isActive": False}).status_code == 200
    assert client.patch(url, headers=headers, json={"isActive": True}).status_code == 200
    assert client.patch(url, headers=headers, json={"role": "MANAGER"}).status_code == 200
    log = events(client, headers)["items"]
    assert [e["action"] for e in log[:4]] == [
        "user.reactivated",
        "user.deactivated",
        "user.role_changed",
        "user.created",
    ]
    assert {e["target"] for e in log[:4]} == {f"user {user['email']}"}
    assert {e["actor"] for e in log[:4]} == {admin.email}
    assert log[2]["details"] == {"role": {"from": "USER", "to": "MANAGER"}}
    assert "p" * 12 not in json.dumps(log)


def test_a_refused_change_records_nothing(client, admin):
    headers = login(client, admin)
    before = events(client, headers)["total"]
    me = f"/api/settings/users/{admin.id}"
    assert client.patch(me, headers=headers, json={"role": "USER"}).status_code == 409
    taken = {"email": admin.email, "password": "p" * 12, "role": "USER"}
    assert client.post("/api/settings/users", headers=headers, json=taken).status_code == 409
    assert events(client, headers)["total"] == before


def smtp_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "host": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "username": "",
        "defaultFromName": "News",
        "defaultFromEmail": "news@example.com",
    }
    body.update(overrides)
    return body


def test_email_configuration_changes_name_the_fields_never_the_password(client, admin):
    headers = login(client, admin)
    first = smtp_body(username="mailer", password=SMTP_PASSWORD)
    assert client.put("/api/settings/email", headers=headers, json=first).status_code == 200
    created = latest(client, headers, "email_config.saved")
    assert created["target"] == "email configuration"
    assert created["details"]["host"] == {"from": None, "to": "127.0.0.1"}
    assert created["details"]["password"] == "changed"

    renamed = {**first, "defaultFromName": "Weekly news"}
    assert client.put("/api/settings/email", headers=headers, json=renamed).status_code == 200
    changed = latest(client, headers, "email_config.saved")
    assert changed["details"] == {
        "defaultFromName": {"from": "News", "to": "Weekly news"},
        "password": "changed",  # a password was entered again
    }
    unchanged_password = {k: v for k, v in renamed.items() if k != "password"}
    unchanged_password["defaultFromEmail"] = "hello@example.com"
    response = client.put("/api/settings/email", headers=headers, json=unchanged_password)
    assert response.status_code == 200
    assert latest(client, headers, "email_config.saved")["details"] == {
        "defaultFromEmail": {"from": "news@example.com", "to": "hello@example.com"}
    }
    everything = json.dumps(events(client, headers, pageSize=500))
    assert SMTP_PASSWORD not in everything
    assert actions(client, headers).count("email_config.saved") == 3


def test_campaign_launch_and_delete(client, admin):
    headers = login(client, admin)
    assert client.put("/api/settings/email", headers=headers, json=smtp_body()).status_code == 200
    nobody = {"type": "STATUS", "statuses": ["INACTIVE"]}  # launched to nobody: nothing dials
    made = []
    for name in ("Spring sale", "Draft to drop"):
        response = client.post(
            "/api/marketing/campaigns",
            headers=headers,
            json={"name": name, "subject": "Hi", "audience": nobody},
        )
        assert response.status_code == 201
        made.append(response.json()["id"])
    launched = client.post(f"/api/marketing/campaigns/{made[0]}/launch", headers=headers)
    assert launched.status_code == 202
    assert client.delete(f"/api/marketing/campaigns/{made[1]}", headers=headers).status_code == 204
    # refused: only a DRAFT is deleted or launched
    assert client.delete(f"/api/marketing/campaigns/{made[0]}", headers=headers).status_code == 409
    again = client.post(f"/api/marketing/campaigns/{made[0]}/launch", headers=headers)
    assert again.status_code == 409

    log = events(client, headers)["items"]
    assert [e["action"] for e in log[:2]] == ["campaign.deleted", "campaign.launched"]
    assert log[0]["target"] == f"campaign {made[1]} Draft to drop"
    assert log[1]["target"] == f"campaign {made[0]} Spring sale"
    assert log[1]["details"] == {"recipients": 0}
    assert actions(client, headers).count("campaign.launched") == 1


def test_resubscribing_an_opted_out_contact(client, admin):
    headers = login(client, admin)
    response = client.post(
        "/api/crm/contacts",
        headers=headers,
        json={"email": "ann@example.com", "marketingOptOut": True},
    )
    contact = response.json()
    url = f"/api/crm/contacts/{contact['id']}"
    assert client.patch(url, headers=headers, json={"firstName": "Ann"}).status_code == 200
    assert client.patch(url, headers=headers, json={"marketingOptOut": False}).status_code == 200
    assert client.patch(url, headers=headers, json={"marketingOptOut": False}).status_code == 200
    assert actions(client, headers).count("contact.resubscribed") == 1
    event = latest(client, headers, "contact.resubscribed")
    assert event["target"] == f"contact {contact['id']} ann@example.com"
    assert event["details"] == {"marketingOptOut": {"from": True, "to": False}}
    assert event["actor"] == admin.email


def test_an_import_never_resubscribes_so_records_nothing(client, admin):
    headers = login(client, admin)
    client.post(
        "/api/crm/contacts",
        headers=headers,
        json={"email": "bob@example.com", "marketingOptOut": True},
    )
    csv = "email,marketingOptOut\nbob@example.com,false\n"
    response = client.post(
        "/api/crm/contacts/import",
        headers=headers,
        files={"file": ("contacts.csv", csv.encode(), "text/csv")},
    )
    assert response.status_code == 200 and response.json()["updated"] == 1
    found = client.get("/api/crm/contacts", headers=headers, params={"q": "bob@"}).json()
    assert found["items"][0]["marketingOptOut"] is True
    assert "contact.resubscribed" not in actions(client, headers)


def test_the_cli_is_a_named_system_actor(client, runtime, database_url, tmp_path, admin):
    headers = login(client, admin)
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    env = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_LEVEL": "WARNING"}
    for args in (
        ["user", "create", "--org", str(admin.org_id), "--email", email, "--password", PASSWORD],
        ["user", "reset-mfa", "--email", email],
    ):
        done = subprocess.run(
            [HERALD, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    log = events(client, headers)["items"]
    assert [(e["actor"], e["action"], e["target"]) for e in log[:2]] == [
        ("herald CLI", "auth.mfa_reset", f"user {email}"),
        ("herald CLI", "user.created", f"user {email}"),
    ]
    assert PASSWORD not in json.dumps(log)


def test_an_event_commits_and_rolls_back_with_its_action(client, runtime, admin):
    """The event is written in the action's transaction: a rolled-back action leaves no
    event, and a committed one always has its event."""
    headers = login(client, admin)
    email = f"rolled-{uuid.uuid4().hex[:8]}@example.com"
    who = audit.system_actor(admin.org_id, audit.CLI)
    with pytest.raises(RuntimeError), unit_of_work(runtime.sessions) as session:
        org = orgs.get_org(session, admin.org_id)
        orgs.create_user(session, org, email, PASSWORD, "USER", actor=who)
        raise RuntimeError("the request failed after the service ran")
    with unit_of_work(runtime.sessions, write=False) as session:
        assert session.query(User).filter(User.email == email).count() == 0
    assert f"user {email}" not in [e["target"] for e in events(client, headers)["items"]]

    with unit_of_work(runtime.sessions) as session:
        org = orgs.get_org(session, admin.org_id)
        orgs.create_user(session, org, email, PASSWORD, "USER", actor=who)
    assert events(client, headers)["items"][0]["target"] == f"user {email}"
