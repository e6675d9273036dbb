"""Uploads are read only after the caller is authenticated, allowed and (pages) past the
CSRF check: a request that declares a large body but sends only its first bytes gets its
401/403/redirect at once, while the server has read none of the rest. The control: an
allowed upload with the same start does wait for the rest of its body."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.orgs.factories import login, make_org, make_user

DECLARED = 10 * 1024 * 1024  # within the upload limit, so only the handler can refuse early
BOUNDARY = "herald-upload-boundary"
FIRST_BYTES = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n'
    "Content-Type: text/csv\r\n\r\nemail\n"
).encode()
CSRF = "upload-before-auth-csrf"


def first_answer(url: str, path: str, headers: dict[str, str], wait: float) -> str | None:
    """The status line the server answers within ``wait`` seconds to a request that sent
    only the first bytes of its declared body; None when it waits for the rest."""
    parts = urlsplit(url)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {DECLARED}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + FIRST_BYTES)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            return None
    return answer.split(b"\r\n", 1)[0].decode()


def test_refusals_come_before_the_body(live_server, runtime):
    org = make_org(runtime)
    with httpx.Client(base_url=live_server.url) as client:
        user = login(client, make_user(runtime, org, "USER"))["Authorization"]
        manager = login(client, make_user(runtime, org, "MANAGER"))["Authorization"]
    user_token, manager_token = user.split(" ", 1)[1], manager.split(" ", 1)[1]
    csrf_cookie = f"herald_csrf={CSRF}"
    cases = {
        "API, anonymous": ("/api/crm/contacts/import", {}, " 401 "),
        "API, USER": ("/api/crm/contacts/import", {"Authorization": user}, " 403 "),
        "page, anonymous": (f"/crm/import?csrf_token={CSRF}", {"Cookie": csrf_cookie}, " 303 "),
        "page, USER": (
            f"/crm/import?csrf_token={CSRF}",
            {"Cookie": f"{csrf_cookie}; herald_access={user_token}"},
            " 403 ",
        ),
        "page, wrong CSRF token": (
            "/crm/import?csrf_token=wrong",
            {"Cookie": f"{csrf_cookie}; herald_access={manager_token}"},
            " 403 ",
        ),
        "page, no CSRF cookie": (
            f"/crm/import?csrf_token={CSRF}",
            {"Cookie": f"herald_access={manager_token}"},
            " 403 ",
        ),
        "page, another site": (
            f"/crm/import?csrf_token={CSRF}",
            {
                "Cookie": f"{csrf_cookie}; herald_access={manager_token}",
                "Origin": "https://evil.example",
            },
            " 403 ",
        ),
    }
    for name, (path, headers, status) in cases.items():
        started = time.monotonic()
        answer = first_answer(live_server.url, path, headers, wait=5)
        assert answer is not None, f"{name}: the server waited for the body"
        assert status in answer + " ", (name, answer)
        assert time.monotonic() - started < 5, name

    # The control: allowed callers' uploads are read, so the server waits for the rest.
    allowed = {
        "API, MANAGER": ("/api/crm/contacts/import", {"Authorization": manager}),
        "page, MANAGER": (
            f"/crm/import?csrf_token={CSRF}",
            {"Cookie": f"{csrf_cookie}; herald_access={manager_token}"},
        ),
    }
    for name, (path, headers) in allowed.items():
        assert first_answer(live_server.url, path, headers, wait=1.5) is None, name


def test_an_anonymous_json_body_is_refused_before_it_is_read(live_server):
    started = time.monotonic()
    parts = urlsplit(live_server.url)
    head = (
        f"POST /api/crm/contacts HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"email": "')
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
    assert b'"not_authenticated"' in answer
    assert time.monotonic() - started < 5
