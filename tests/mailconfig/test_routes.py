"""GET and PUT /api/settings/email over real HTTP: shape, password handling, validation, roles."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from herald.mailconfig.models import EmailConfig
from herald.mailconfig.service import smtp_box
from herald.runtime import Runtime
from tests.mailconfig.conftest import Admin
from tests.mailconfig.factories import FROM_EMAIL, FROM_NAME, config_body
from tests.orgs.factories import login, make_org, make_user

URL = "/api/settings/email"
GET_FIELDS = {
    "configured",
    "host",
    "port",
    "username",
    "security",
    "defaultFromName",
    "defaultFromEmail",
    "passwordSet",
    "maxPerSecond",
    "maxPerHour",
    "maxConnections",
    "updatedAt",
    "bounceAddress",
    "softBounceLimit",
    "bounceMailbox",
    "webhookKey",
    "webhookUrls",
    "sendgridVerificationKey",
    "mailgunSigningKeySet",
    "postmarkUsername",
    "postmarkPassword",
}


def stored_row(runtime: Runtime, admin: Admin) -> EmailConfig | None:
    with runtime.sessions() as session:
        return session.scalars(
            select(EmailConfig).where(EmailConfig.org_id == admin.user.org_id)
        ).one_or_none()


def test_get_before_anything_is_configured(client: httpx.Client, admin: Admin) -> None:
    r = client.get(URL, headers=admin.headers)

    assert r.status_code == 200, r.text
    assert r.json() == {
        "configured": False,
        "host": "",
        "port": 587,
        "username": "",
        "security": "starttls",
        "defaultFromName": "",
        "defaultFromEmail": "",
        "passwordSet": False,
        "maxPerSecond": None,
        "maxPerHour": None,
        "maxConnections": 10,
        "updatedAt": None,
        "bounceAddress": None,
        "softBounceLimit": 3,
        "bounceMailbox": None,
        "webhookKey": None,
        "webhookUrls": None,
        "sendgridVerificationKey": "",
        "mailgunSigningKeySet": False,
        "postmarkUsername": None,
        "postmarkPassword": None,
    }


def test_put_then_get_never_returns_the_password(
    client: httpx.Client, runtime: Runtime, admin: Admin
) -> None:
    body = config_body(username="mailer", password="pa55-w0rd-secret", security="tls", port=465)

    put = client.put(URL, json=body, headers=admin.headers)
    get = client.get(URL, headers=admin.headers)

    assert put.status_code == 200, put.text
    assert put.json() == get.json()
    shown = get.json()
    assert set(shown) == GET_FIELDS
    assert "pa55-w0rd-secret" not in put.text + get.text
    assert shown["configured"] is True
    assert shown["passwordSet"] is True
    assert (shown["host"], shown["port"], shown["security"]) == ("smtp.example.com", 465, "tls")
    assert (shown["username"], shown["defaultFromName"]) == ("mailer", FROM_NAME)
    assert shown["defaultFromEmail"] == FROM_EMAIL
    updated = dt.datetime.fromisoformat(shown["updatedAt"].replace("Z", "+00:00"))
    assert updated.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - updated) < dt.timedelta(minutes=1)

    row = stored_row(runtime, admin)
    assert row is not None and row.password_sealed is not None
    assert "pa55-w0rd-secret" not in row.password_sealed
    assert smtp_box(runtime.settings).open(row.password_sealed) == "pa55-w0rd-secret"


def test_password_is_kept_when_omitted_or_null_and_cleared_by_empty_string(
    client: httpx.Client, runtime: Runtime, admin: Admin
) -> None:
    client.put(URL, json=config_body(username="u", password="first-secret"), headers=admin.headers)

    # Same destination (host, port, username, security): the password stays.
    omitted = client.put(
        URL, json=config_body(username="u", defaultFromName="Renamed"), headers=admin.headers
    )
    assert omitted.status_code == 200, omitted.text
    assert omitted.json()["passwordSet"] is True
    assert omitted.json()["defaultFromName"] == "Renamed"
    row = stored_row(runtime, admin)
    assert row is not None and row.password_sealed is not None
    assert smtp_box(runtime.settings).open(row.password_sealed) == "first-secret"

    null = client.put(URL, json=config_body(username="u", password=None), headers=admin.headers)
    assert null.json()["passwordSet"] is True

    cleared = client.put(URL, json=config_body(password=""), headers=admin.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["passwordSet"] is False
    row = stored_row(runtime, admin)
    assert row is not None and row.password_sealed is None


def test_relay_limits_left_out_are_kept_and_null_lifts_them(
    client: httpx.Client, admin: Admin
) -> None:
    """As the bounce settings: a client that knows nothing of limits never lifts them."""
    limits = {"maxPerSecond": 14, "maxPerHour": 50_000, "maxConnections": 3}
    saved = client.put(URL, json=config_body(**limits), headers=admin.headers)
    assert saved.status_code == 200, saved.text

    def shown(answer: httpx.Response) -> dict[str, Any]:
        return {name: answer.json()[name] for name in limits}

    kept = client.put(URL, json=config_body(defaultFromName="Renamed"), headers=admin.headers)
    assert kept.status_code == 200, kept.text
    assert shown(kept) == limits
    lifted = client.put(
        URL, json=config_body(maxPerSecond=None, maxPerHour=None), headers=admin.headers
    )
    assert shown(lifted) == {"maxPerSecond": None, "maxPerHour": None, "maxConnections": 3}


def test_put_normalises_surrounding_spaces(client: httpx.Client, admin: Admin) -> None:
    body = config_body(host="  SMTP.Example.COM ", defaultFromEmail=" News@Example.com ")

    r = client.put(URL, json=body, headers=admin.headers)

    assert r.status_code == 200, r.text
    assert r.json()["host"] == "smtp.example.com"
    assert r.json()["defaultFromEmail"].lower() == "news@example.com"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "   "}, "host"),
        ({"host": "smtp example.com"}, "host"),
        ({"host": "smtp.example.com\r\nRCPT TO:<x@example.com>"}, "host"),
        ({"host": "smtp://smtp.example.com"}, "host"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "twenty-five"}, "port"),
        ({"port": True}, "port"),
        ({"port": 25.5}, "port"),
        ({"security": "ssl"}, "security"),
        ({"defaultFromEmail": "not-an-address"}, "defaultFromEmail"),
        ({"defaultFromEmail": ""}, "defaultFromEmail"),
        ({"defaultFromEmail": "a@example.com\r\nBcc: b@example.com"}, "defaultFromEmail"),
        ({"defaultFromName": "News\r\nBcc: victim@example.com"}, "defaultFromName"),
        ({"defaultFromName": "News\n"}, "defaultFromName"),
        ({"username": "mailer\rX"}, "username"),
        ({"passwordSet": True}, "passwordSet"),
        ({"fromEmail": "a@example.com"}, "fromEmail"),
    ],
)
def test_put_rejects_bad_input_naming_the_field(
    client: httpx.Client, admin: Admin, overrides: dict[str, Any], field: str
) -> None:
    r = client.put(URL, json=config_body(**overrides), headers=admin.headers)

    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert [d["field"] for d in error["details"]] == [field]


@pytest.mark.parametrize("missing", ["host", "port", "security", "defaultFromEmail"])
def test_put_requires_the_essential_fields(
    client: httpx.Client, admin: Admin, missing: str
) -> None:
    body = config_body()
    del body[missing]

    r = client.put(URL, json=body, headers=admin.headers)

    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == [missing]


def test_a_rejected_put_changes_nothing(client: httpx.Client, admin: Admin) -> None:
    client.put(URL, json=config_body(password="keep-me"), headers=admin.headers)
    before = client.get(URL, headers=admin.headers).json()

    bad = config_body(host="other.example.com", password="", defaultFromName="x\ny")
    r = client.put(URL, json=bad, headers=admin.headers)

    assert r.status_code == 422
    assert client.get(URL, headers=admin.headers).json() == before


def test_put_rejects_a_body_that_is_not_json(client: httpx.Client, admin: Admin) -> None:
    r = client.put(
        URL, content=b"host=smtp", headers={**admin.headers, "Content-Type": "application/json"}
    )

    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("role", ["MANAGER", "USER"])
def test_only_admins_read_or_change_email_settings(
    client: httpx.Client, runtime: Runtime, admin: Admin, role: str
) -> None:
    client.put(URL, json=config_body(), headers=admin.headers)
    other = login(client, make_user(runtime, admin.user.org_id, role))

    answers = [
        client.get(URL, headers=other),
        client.put(URL, json=config_body(host="evil.example.com"), headers=other),
        client.post(f"{URL}/test", json={"to": "a@example.com"}, headers=other),
    ]

    for r in answers:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "role_required"
    assert client.get(URL, headers=admin.headers).json()["host"] == "smtp.example.com"


def test_anonymous_callers_are_asked_to_log_in(client: httpx.Client) -> None:
    answers = [
        client.get(URL),
        client.put(URL, json=config_body()),
        client.post(f"{URL}/test", json={"to": "a@example.com"}),
    ]

    for r in answers:
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "not_authenticated"


def test_each_org_sees_and_changes_only_its_own_configuration(
    client: httpx.Client, admin: Admin, runtime: Runtime
) -> None:
    client.put(
        URL, json=config_body(host="a.example.com", password="a-secret"), headers=admin.headers
    )
    other = login(client, make_user(runtime, make_org(runtime), "ADMIN"))

    assert client.get(URL, headers=other).json()["configured"] is False
    client.put(URL, json=config_body(host="b.example.com"), headers=other)

    assert client.get(URL, headers=other).json()["host"] == "b.example.com"
    assert client.get(URL, headers=other).json()["passwordSet"] is False
    mine = client.get(URL, headers=admin.headers).json()
    assert (mine["host"], mine["passwordSet"]) == ("a.example.com", True)


def test_two_first_saves_at_once_both_succeed(client: httpx.Client, admin: Admin) -> None:
    hosts = [f"smtp{i}.example.com" for i in range(4)]

    def put(host: str) -> int:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
            return own.put(URL, json=config_body(host=host), headers=admin.headers).status_code

    with ThreadPoolExecutor(len(hosts)) as pool:
        codes = list(pool.map(put, hosts))

    assert codes == [200] * len(hosts)
    assert client.get(URL, headers=admin.headers).json()["host"] in hosts
