"""Malformed requests: broken JSON, wrong types and content types, broken multipart and path
traversal get a 4xx in the error shape and change nothing; never a 500, never a file outside
the static directory."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.security.hostile import API, fresh_admin

admin = pytest.fixture(fresh_admin)

JSON_BODIES = {
    "truncated": b'{"name": "x", "subject": "y"',
    "trailing comma": b'{"name": "x", "subject": "y",}',
    "single quotes": b"{'name': 'x', 'subject': 'y'}",
    "array": b'[{"name": "x", "subject": "y"}]',
    "string": b'"name"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
    "nested 10k arrays": b"[" * 10_000 + b"]" * 10_000,
    "nested 10k in a field": b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b', "subject": "y"}',
    "nested 10k objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "huge integer": b'{"name": "x", "subject": "y", "audience": ' + b"9" * 100_000 + b"}",
    "NaN": b'{"name": NaN, "subject": "y"}',
    "Infinity": b'{"name": "x", "subject": Infinity}',
    "1e999999": b'{"name": 1e999999, "subject": "y"}',
    "not UTF-8": b'{"name": "\xff\xfe", "subject": "y"}',
    "comment": b'{"name": "x", /* hi */ "subject": "y"}',
    "wrong types": b'{"name": ["x"], "subject": {"a": 1}, "audience": "ALL"}',
    "extra field": b'{"name": "x", "subject": "y", "status": "SENT"}',
}
SETTINGS_BODIES = {
    "huge port": b'{"host": "h.example", "port": 99999999999999999999999, "security": "none",'
    b' "defaultFromEmail": "a@b.example"}',
    "NaN port": b'{"host": "h.example", "port": NaN, "security": "none",'
    b' "defaultFromEmail": "a@b.example"}',
    "float port": b'{"host": "h.example", "port": 25.5, "security": "none",'
    b' "defaultFromEmail": "a@b.example"}',
    "bool opt-out": b'{"email": "a@b.example", "marketingOptOut": "yes"}',
}


def assert_4xx(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, what
    assert error["code"] and error["message"], what


def total(client, admin, path: str) -> int:  # type: ignore[no-untyped-def]
    return int(client.get(path, headers=admin.headers).json()["total"])


def test_malformed_json_is_4xx_and_changes_nothing(client, admin):
    headers = {**admin.headers, "content-type": "application/json"}
    for name, body in JSON_BODIES.items():
        response = client.post(f"{API}/campaigns", content=body, headers=headers)
        assert_4xx(response, name)
        assert_4xx(client.post("/api/crm/contacts", content=body, headers=headers), name)
    for name, body in SETTINGS_BODIES.items():
        path = "/api/crm/contacts" if "opt-out" in name else "/api/settings/email"
        method = "POST" if "opt-out" in name else "PUT"
        assert_4xx(client.request(method, path, content=body, headers=headers), name)
    assert total(client, admin, f"{API}/campaigns") == 0
    assert total(client, admin, "/api/crm/contacts") == 0


def test_duplicate_keys_take_the_last_value_like_every_json_parser(client, admin):
    body = b'{"name": "first", "name": "last", "subject": "s", "subject": "t"}'
    headers = {**admin.headers, "content-type": "application/json"}
    response = client.post(f"{API}/campaigns", content=body, headers=headers)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert (response.json()["name"], response.json()["subject"]) == ("last", "t")


def test_wrong_content_types_are_4xx(client, admin):
    body = b'{"name": "x", "subject": "y"}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=utf-16",
        "",
    ):
        headers = {**admin.headers, "content-type": content_type}
        response = client.post(f"{API}/campaigns", content=body, headers=headers)
        if response.status_code == 201:  # only a JSON type may be read as JSON
            assert "json" in content_type, content_type
            continue
        assert_4xx(response, content_type)


MULTIPART = {
    "no boundary": ("multipart/form-data", b"--x\r\n\r\nemail\r\n--x--\r\n"),
    "broken boundary": (
        "multipart/form-data; boundary=abc",
        b'--abd\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n\r\nemail\r\n',
    ),
    "unterminated": (
        "multipart/form-data; boundary=abc",
        b'--abc\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n\r\nemail\n',
    ),
    "no headers": ("multipart/form-data; boundary=abc", b"--abc\r\n\r\nemail\r\n--abc--\r\n"),
    "empty": ("multipart/form-data; boundary=abc", b""),
    "json instead": ("application/json", b'{"file": "email\\na@b.example"}'),
}


def test_malformed_multipart_is_4xx_and_imports_nothing(client, admin):
    for name, (content_type, body) in MULTIPART.items():
        response = client.post(
            "/api/crm/contacts/import",
            content=body,
            headers={**admin.headers, "content-type": content_type},
        )
        assert_4xx(response, name)
    missing = client.post(
        "/api/crm/contacts/import",
        files={"other": ("c.csv", b"email\nmissing@example.com\n", "text/csv")},
        headers=admin.headers,
    )
    assert_4xx(missing, "no file field")
    assert total(client, admin, "/api/crm/contacts") == 0
    two = client.post(
        "/api/crm/contacts/import",
        files=[
            ("file", ("a.csv", b"email\none@example.com\n", "text/csv")),
            ("file", ("b.csv", b"email\ntwo@example.com\n", "text/csv")),
        ],
        headers=admin.headers,
    )
    assert two.status_code in (200, 422), two.text  # one file imported, or refused
    if two.status_code == 200:
        assert two.json()["created"] == 1
    assert total(client, admin, "/api/crm/contacts") == (1 if two.status_code == 200 else 0)


def test_the_import_file_name_is_never_used_as_a_path(client, admin):
    for filename in (
        "../../etc/passwd",
        "/etc/passwd",
        "..\\..\\boot.ini",
        "a\x00.csv",
        "%2e%2e%2f",
    ):
        response = client.post(
            "/api/crm/contacts/import",
            files={"file": (filename, b"email\n", "text/csv")},
            headers=admin.headers,
        )
        assert response.status_code in (200, 400, 422), (filename, response.text)
        assert "root:" not in response.text


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """GET with the request target exactly as given (httpx would normalise the dots)."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


@pytest.mark.parametrize(
    "target",
    [
        "/static/../settings.py",
        "/static/../../settings.py",
        "/static/../../herald/settings.py",
        "/static/%2e%2e/%2e%2e/settings.py",
        "/static/%2e%2e%2f%2e%2e%2fsettings.py",
        "/static/..%2f..%2fsettings.py",
        "/static/..%5c..%5csettings.py",
        "/static/%252e%252e/%252e%252e/settings.py",
        "/static/....//....//settings.py",
        "/static//etc/passwd",
        "/static/%00",
        "/static/x%00.css",
        "/static/../templates/base.html",
        "/static/%2e%2e/templates/base.html",
    ],
)
def test_the_static_mount_serves_nothing_outside_its_directory(live_server, target):
    status, body = raw_get(live_server.url, target)
    assert status in (400, 404), (target, status)
    for secret in (b"class Settings", b"pydantic", b"root:", b"{% block", b"<!doctype"):
        assert secret not in body, (target, secret)


def test_path_params_with_traversal_or_nul_are_404_or_422(client, admin, live_server):
    for value in ("..%2F..%2Fetc%2Fpasswd", "%00", "..", "%2e%2e", "a%00b", "1%20OR%201=1"):
        for path in (
            f"{API}/campaigns/{value}",
            f"{API}/campaigns/{value}/sends.csv",
            f"/api/crm/contacts/{value}",
        ):
            response = client.get(path, headers=admin.headers)
            assert response.status_code in (404, 422), (path, response.status_code)
        status, _ = raw_get(live_server.url, f"/t/{value}.gif")
        assert status in (200, 404, 422), (value, status)  # the pixel is always a GIF
