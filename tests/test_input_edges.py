"""Bad input never answers 500: oversized bodies, NUL, lone surrogates, odd digits."""

from __future__ import annotations

import json

from tests.orgs.factories import admin_headers


def test_a_body_over_the_limit_is_413_before_it_is_read(client):
    response = client.post(
        "/api/auth/login",
        content=b'{"email": "' + b"a" * (9 * 1024 * 1024) + b'", "password": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_nul_and_lone_surrogates_are_422_naming_the_field(client, runtime):
    headers = admin_headers(client, runtime)
    for raw in ('{"email": "a@example.com", "firstName": "A\\u0000B"}',
                '{"email": "a@example.com", "firstName": "\\ud800"}'):  # fmt: skip
        response = client.post(
            "/api/crm/contacts",
            content=raw.encode(),
            headers={**headers, "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "firstName"
    body = {"host": "smtp.example.com", "port": 25, "security": "none", "username": "a\x00b",
            "defaultFromName": "N", "defaultFromEmail": "n@example.com"}  # fmt: skip
    response = client.put("/api/settings/email", headers=headers, content=json.dumps(body))
    assert response.status_code == 422


def test_a_login_with_nul_is_an_ordinary_failure(client):
    response = client.post(
        "/api/auth/login", json={"email": "a\x00@example.com", "password": "x\x00"}
    )
    assert response.status_code in (401, 422)


def test_unicode_digits_in_page_numbers_are_not_a_500(client, runtime):
    headers = admin_headers(client, runtime)
    for page in ("²", "①", "99999999999999999999"):
        response = client.get(f"/api/crm/contacts?page={page}", headers=headers)
        assert response.status_code in (200, 422), response.text
