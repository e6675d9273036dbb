"""Issue 13, finding 1: the stored SMTP password belongs to its destination, and Herald sends
credentials only over TLS and only to a server that offers AUTH."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from herald.mail.egress import parse_networks
from herald.mail.smtp import SmtpConnection, SmtpError, SmtpSettings
from herald.runtime import Runtime
from tests.line_server import LineServer
from tests.mailconfig.factories import config_body
from tests.orgs.factories import login, make_org, make_user
from tests.security.conftest import CSRF, page_session
from tests.smtp_server import _self_signed_context

SECRET = "the-real-relay-password"


@pytest.fixture
def admin_headers(client: httpx.Client, runtime: Runtime) -> dict[str, str]:
    return login(client, make_user(runtime, make_org(runtime), "ADMIN"))


@pytest.fixture
def line_server() -> Iterator[LineServer]:
    server = LineServer(["AUTH PLAIN LOGIN", "PIPELINING"]).start()
    yield server
    server.stop()


def test_changing_the_host_without_a_password_clears_it_and_sends_no_auth(
    client: httpx.Client, admin_headers: dict[str, str], line_server: LineServer
) -> None:
    """The repro: an ADMIN aims the saved account at their own server, leaving the password
    out; before the fix the test message logged in there with the stored password."""
    real = config_body(username="relay-user", password=SECRET, security="starttls")
    assert client.put("/api/settings/email", json=real, headers=admin_headers).status_code == 200

    mine = config_body(
        host="127.0.0.1", port=line_server.port, username="relay-user", security="none"
    )
    moved = client.put("/api/settings/email", json=mine, headers=admin_headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["passwordSet"] is False

    client.post("/api/settings/email/test", json={"to": "a@example.com"}, headers=admin_headers)
    assert "AUTH" not in line_server.commands()
    assert SECRET not in "\n".join(line_server.lines)


@pytest.mark.parametrize(
    "change",
    [{"host": "smtp2.example.com"}, {"port": 2525}, {"username": "other"}, {"security": "tls"}],
)
def test_any_change_of_destination_clears_the_password(
    client: httpx.Client, admin_headers: dict[str, str], change: dict[str, object]
) -> None:
    saved = config_body(username="relay-user", password=SECRET)
    assert client.put("/api/settings/email", json=saved, headers=admin_headers).status_code == 200
    kept = client.put(
        "/api/settings/email",
        json=config_body(username="relay-user", defaultFromName="New name"),
        headers=admin_headers,
    )
    assert kept.json()["passwordSet"] is True

    moved = client.put(
        "/api/settings/email",
        json={**config_body(username="relay-user"), **change},
        headers=admin_headers,
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["passwordSet"] is False


def test_security_none_with_a_username_never_sends_credentials(
    client: httpx.Client, admin_headers: dict[str, str], line_server: LineServer
) -> None:
    body = config_body(
        host="127.0.0.1",
        port=line_server.port,
        username="relay-user",
        password=SECRET,
        security="none",
    )
    assert client.put("/api/settings/email", json=body, headers=admin_headers).status_code == 200

    r = client.post("/api/settings/email/test", json={"to": "a@example.com"}, headers=admin_headers)

    assert r.status_code == 502, r.text
    assert "only over TLS" in r.json()["error"]["message"]
    assert "AUTH" not in line_server.commands()
    assert "MAIL" not in line_server.commands()  # failed before anything was sent


def test_a_server_offering_no_auth_never_receives_auth() -> None:
    """Over STARTTLS, to a server whose EHLO lists no AUTH: before the fix Herald sent AUTH
    PLAIN anyway."""
    with tempfile.TemporaryDirectory() as certs:
        server = LineServer(["PIPELINING"], tls_context=_self_signed_context(Path(certs))).start()
        try:
            smtp = SmtpSettings(
                "127.0.0.1",
                server.port,
                "starttls",
                "relay-user",
                SECRET,
                timeout=5,
                verify_tls=False,
                allowed_networks=parse_networks("127.0.0.0/8"),
            )
            with pytest.raises(SmtpError, match="does not offer AUTH"):
                asyncio.run(SmtpConnection.open(smtp))
        finally:
            server.stop()
    assert "STARTTLS" in server.commands()  # it did get as far as TLS
    assert not [line for line in server.tls_lines if line.upper().startswith("AUTH")]
    assert SECRET not in "\n".join(server.lines + server.tls_lines)


def test_the_settings_form_clears_the_password_when_the_host_changes(
    client: httpx.Client, runtime: Runtime
) -> None:
    user = make_user(runtime, make_org(runtime), "ADMIN")
    headers = login(client, user)
    saved = config_body(username="relay-user", password=SECRET)
    assert client.put("/api/settings/email", json=saved, headers=headers).status_code == 200
    cookies = page_session(client, user)
    client.cookies.clear()
    form = {
        "csrf_token": CSRF,
        "host": "other-relay.example.com",
        "port": "587",
        "security": "starttls",
        "username": "relay-user",
        "password": "",  # left empty: a browser's write-only field
        "default_from_name": "Acme",
        "default_from_email": "news@example.com",
    }

    r = client.post(
        "/settings/email",
        data=form,
        headers={
            "Cookie": f"herald_csrf={CSRF}; herald_access={cookies['herald_access']}",
            "Accept": "text/html",
        },
    )

    assert r.status_code == 303, r.text
    shown = client.get("/api/settings/email", headers=headers).json()
    assert (shown["host"], shown["passwordSet"]) == ("other-relay.example.com", False)
