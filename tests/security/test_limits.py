"""Size limits: bodies over the limit are 413 in the error shape before anything is created,
oversized fields are 422 naming the field, and hostile CSV files get a clear answer; never a 500."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.marketing.factories import assert_error, assert_field_error, campaign_body
from tests.security.hostile import API, fresh_admin

admin = pytest.fixture(fresh_admin)
MB = 1024 * 1024


def count_campaigns(client, who) -> int:  # type: ignore[no-untyped-def]
    return int(client.get(f"{API}/campaigns", headers=who.headers).json()["total"])


def test_a_json_body_over_the_limit_is_413_and_creates_nothing(client, admin):
    body = json.dumps(campaign_body(htmlBody="x" * (9 * MB))).encode()
    headers = {**admin.headers, "content-type": "application/json"}
    declared = client.post(f"{API}/campaigns", content=body, headers=headers)
    error = assert_error(declared, 413, "payload_too_large")
    assert error["details"]["maxBytes"] == 8 * MB

    def chunks():  # no Content-Length: the limit counts what arrives
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = client.post(f"{API}/campaigns", content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "payload_too_large")
    assert count_campaigns(client, admin) == 0


def test_huge_fields_are_422_naming_the_field(client, admin):
    cases = {
        "subject": "s" * MB,
        "name": "n" * MB,
        "fromName": "f" * MB,
        "fromEmail": "a" * MB + "@example.com",
        "htmlBody": "<p>" + "é" * (MB // 2 + 10) + "</p>",  # over 1 MiB as UTF-8
        "textBody": "t" * (MB + 1),
    }
    for field, value in cases.items():
        response = client.post(
            f"{API}/campaigns", json=campaign_body(**{field: value}), headers=admin.headers
        )
        assert_field_error(response, field)
    for field in ("firstName", "lastName", "companyName", "email", "status"):
        body = {"email": "a@example.com", field: "x" * MB}
        response = client.post("/api/crm/contacts", json=body, headers=admin.headers)
        assert_field_error(response, field)
    settings = {"host": "smtp.example.com", "port": 587, "security": "starttls",
                "defaultFromEmail": "n@example.com"}  # fmt: skip
    for field in ("host", "username", "password", "defaultFromName", "defaultFromEmail"):
        response = client.put(
            "/api/settings/email", json={**settings, field: "x" * MB}, headers=admin.headers
        )
        assert_field_error(response, field)
    assert count_campaigns(client, admin) == 0


def upload(client: httpx.Client, headers: dict[str, str], data: bytes) -> httpx.Response:
    return client.post(
        "/api/crm/contacts/import", files={"file": ("c.csv", data, "text/csv")}, headers=headers
    )


def test_hostile_csv_files_get_a_clear_answer(client, admin):
    many = ",".join(f"col{i}" for i in range(100_000)).encode()
    files = {
        "one 10 MB line": (b"email," + b"x" * (10 * MB) + b"\n", 422),
        "a 10 MB cell": (b'email,firstName\na@example.com,"' + b"x" * (10 * MB) + b'"\n', 422),
        "100k header columns": (many + b"\n", 422),
        "100k row columns": (b"email\n" + b"a@example.com" + b",x" * 100_000 + b"\n", 200),
        "invalid UTF-8": (b"email,firstName\nb@example.com,\xc3\x28\n", 422),
        "overlong UTF-8": (b"email,firstName\nb@example.com,\xc0\xaf\n", 422),
        "UTF-16": ("email\nc@example.com\n".encode("utf-16"), 422),
    }
    for name, (data, status) in files.items():
        response = upload(client, admin.headers, data)
        assert response.status_code == status, (name, response.text[:300])
        if status == 422:
            error = assert_field_error(response, "file")
            assert len(error["message"]) < 1000, (name, len(error["message"]))
    row_columns = upload(client, admin.headers, files["100k row columns"][0]).json()
    assert row_columns["skipped"] == 1 and "fields" in row_columns["errors"][0]["message"]
    assert client.get("/api/crm/contacts", headers=admin.headers).json()["total"] == 0


def test_nul_bytes_and_a_bom_are_handled_per_line(client, admin):
    nul = upload(
        client, admin.headers, b"email,firstName\nnul@example.com,A\x00B\nok@example.com,Ok\n"
    )
    assert nul.status_code in (200, 422), nul.text
    if nul.status_code == 200:
        result = nul.json()
        assert (result["created"], result["skipped"]) == (1, 1)
        assert result["errors"][0]["line"] == 2
    else:
        assert_field_error(nul, "file")
    bom = upload(client, admin.headers, "\ufeffemail,firstName\nbom@example.com,Zoë\n".encode())
    assert bom.status_code == 200, bom.text
    assert bom.json()["created"] == 1
    found = client.get("/api/crm/contacts", params={"q": "bom@"}, headers=admin.headers).json()
    assert [c["firstName"] for c in found["items"]] == ["Zoë"]


def test_an_upload_over_the_limit_is_413_on_the_page_route_too(start_server, runtime):
    from tests.marketing.factories import caller
    from tests.security.hostile import page_headers

    server = start_server(max_upload_bytes=1000)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        who = caller(client, runtime)
        headers = page_headers(who)
        headers["Cookie"] += "; herald_csrf=limits-csrf"  # double submit: cookie and field agree
        for size in (5_000, 200_000):  # within the multipart allowance, and far over it
            big = b"email\n" + b"".join(b"u%d@example.com\n" % i for i in range(size // 16))
            response = client.post(
                "/crm/import",
                data={"csrf_token": "limits-csrf"},
                files={"file": ("c.csv", big, "text/csv")},
                headers={**headers, "Accept": "application/json"},
            )
            assert response.status_code == 413, (size, response.text[:300])
        assert client.get("/api/crm/contacts", headers=who.headers).json()["total"] == 0
