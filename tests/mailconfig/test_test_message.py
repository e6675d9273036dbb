"""POST /api/settings/email/test over real HTTP, delivered to (or refused by) a real SMTP server."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.headerregistry import Address

import httpx

from herald.runtime import Runtime
from tests.conftest import LiveServer
from tests.mailconfig.conftest import Admin
from tests.mailconfig.factories import FROM_EMAIL, FROM_NAME, config_body
from tests.orgs.factories import login, make_org, make_user
from tests.smtp_server import SmtpServer, drop, free_port, reject, slow

URL = "/api/settings/email/test"


def configure(client: httpx.Client, admin: Admin, **body: object) -> None:
    r = client.put("/api/settings/email", json=body, headers=admin.headers)
    assert r.status_code == 200, r.text


def send_test(client: httpx.Client, admin: Admin, to: str = "alice@example.com") -> httpx.Response:
    return client.post(URL, json={"to": to}, headers=admin.headers)


def assert_smtp_failed(r: httpx.Response, smtp_code: int | None) -> dict[str, object]:
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "smtp_failed"
    assert error["details"]["smtpCode"] == smtp_code
    assert isinstance(error["details"]["smtpMessage"], str) and error["details"]["smtpMessage"]
    assert error["message"]
    return dict(error)


def test_the_test_message_is_delivered_and_the_reply_reported(
    client: httpx.Client, admin: Admin, smtp_server: SmtpServer
) -> None:
    configure(client, admin, **config_body(smtp_server))

    r = send_test(client, admin, "alice@example.com")

    assert r.status_code == 200, r.text
    [received] = smtp_server.messages
    assert r.json() == {
        "ok": True,
        "code": 250,
        "message": f"2.0.0 Ok: queued as {received.queue_id}",
    }
    assert received.mail_from == FROM_EMAIL
    assert received.rcpt_tos == ["alice@example.com"]
    message = received.message
    assert message["Subject"] == "Herald test message"
    assert message["To"] == "alice@example.com"
    assert message["From"].addresses == (Address(FROM_NAME, addr_spec=FROM_EMAIL),)
    assert message["Message-ID"] and message["Date"]
    assert "test message from Herald" in message.get_content()
    assert received.login is None and received.tls is False


def tls_client(start_server: Callable[..., LiveServer]) -> httpx.Client:
    """A client of an app that accepts the test server's self-signed certificate: Herald
    logs in only over TLS (issue 13.1)."""
    server = start_server(smtp_verify_tls=False)
    return httpx.Client(base_url=server.url, timeout=30)


def test_logs_in_when_a_username_is_set(
    admin: Admin,
    start_smtp_server: Callable[..., SmtpServer],
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_smtp_server(tls="starttls", credentials=("mailer", "s3cret pass"))
    with tls_client(start_server) as client:
        configure(client, admin, **config_body(server, security="starttls"))
        r = send_test(client, admin)

    assert r.status_code == 200, r.text
    assert [m.login for m in server.messages] == ["mailer"]


def test_wrong_password_is_reported_as_an_auth_failure(
    admin: Admin,
    start_smtp_server: Callable[..., SmtpServer],
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_smtp_server(tls="starttls", credentials=("mailer", "s3cret pass"))
    with tls_client(start_server) as client:
        configure(client, admin, **config_body(server, security="starttls", password="wrong"))
        r = send_test(client, admin)

    error = assert_smtp_failed(r, 535)
    assert "username or password" in str(error["message"])
    assert server.messages == []


def test_server_requiring_auth_without_a_username_is_reported(
    client: httpx.Client, admin: Admin, start_smtp_server: Callable[..., SmtpServer]
) -> None:
    server = start_smtp_server(credentials=("mailer", "s3cret pass"))
    configure(client, admin, **config_body(server, username="", password=""))

    r = send_test(client, admin)

    assert_smtp_failed(r, 530)


def test_a_5xx_refusal_is_reported_with_the_server_answer(
    client: httpx.Client, admin: Admin, smtp_server: SmtpServer
) -> None:
    smtp_server.script("ghost@example.com", reject("550 5.1.1 No such user here"))
    configure(client, admin, **config_body(smtp_server))

    r = send_test(client, admin, "ghost@example.com")

    error = assert_smtp_failed(r, 550)
    assert error["details"] == {"smtpCode": 550, "smtpMessage": "5.1.1 No such user here"}
    assert "ghost@example.com" in str(error["message"])
    assert smtp_server.messages == []


def test_a_refusal_after_the_message_is_reported(
    client: httpx.Client, admin: Admin, smtp_server: SmtpServer
) -> None:
    smtp_server.script("spam@example.com", reject("554 5.7.1 Looks like spam", stage="data"))
    configure(client, admin, **config_body(smtp_server))

    r = send_test(client, admin, "spam@example.com")

    assert_smtp_failed(r, 554)


def test_a_dropped_connection_is_reported(
    client: httpx.Client, admin: Admin, smtp_server: SmtpServer
) -> None:
    smtp_server.script("void@example.com", drop())
    configure(client, admin, **config_body(smtp_server))

    r = send_test(client, admin, "void@example.com")

    assert_smtp_failed(r, None)


def test_connection_refused_is_reported(client: httpx.Client, admin: Admin) -> None:
    port = free_port()  # nothing listens there
    configure(client, admin, **config_body(host="127.0.0.1", port=port, security="none"))

    r = send_test(client, admin)

    error = assert_smtp_failed(r, None)
    assert f"127.0.0.1:{port}" in str(error["message"])


def test_untrusted_certificate_is_refused(
    client: httpx.Client, admin: Admin, start_smtp_server: Callable[..., SmtpServer]
) -> None:
    server = start_smtp_server(tls="starttls")
    configure(client, admin, **config_body(server, security="starttls"))

    r = send_test(client, admin)

    error = assert_smtp_failed(r, None)
    assert "certificate" in str(error["message"]).lower()
    assert server.messages == []


def test_not_configured_is_a_conflict(client: httpx.Client, admin: Admin) -> None:
    r = send_test(client, admin)

    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "smtp_not_configured"


def test_an_unreadable_stored_password_is_a_clear_conflict(
    client: httpx.Client,
    admin: Admin,
    smtp_server: SmtpServer,
    start_server: Callable[..., LiveServer],
) -> None:
    configure(client, admin, **config_body(smtp_server, username="u", password="sealed-with-old"))
    rekeyed = start_server(secret_key="a-completely-different-secret-key-for-tests")

    with httpx.Client(base_url=rekeyed.url, timeout=30) as other:
        headers = login(other, admin.user)  # tokens are signed with the secret key too
        shown = other.get("/api/settings/email", headers=headers)
        r = other.post(URL, json={"to": "alice@example.com"}, headers=headers)

    assert shown.status_code == 200, shown.text
    assert shown.json()["passwordSet"] is True
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "smtp_password_unreadable"
    assert "HERALD_SECRET_KEY" in r.json()["error"]["message"]
    assert smtp_server.messages == []


def test_invalid_recipient_is_rejected_naming_to(
    client: httpx.Client, admin: Admin, smtp_server: SmtpServer
) -> None:
    configure(client, admin, **config_body(smtp_server))

    for to in ["not-an-address", "", "a@example.com\r\nBcc: b@example.com"]:
        r = send_test(client, admin, to)
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == ["to"]
    r = client.post(URL, json={"to": "a@example.com", "cc": "b@example.com"}, headers=admin.headers)
    assert r.status_code == 422
    assert smtp_server.messages == []


def test_uses_only_the_callers_org_configuration(
    client: httpx.Client, admin: Admin, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    configure(client, admin, **config_body(smtp_server))
    stranger = login(client, make_user(runtime, make_org(runtime), "ADMIN"))

    r = client.post(URL, json={"to": "alice@example.com"}, headers=stranger)

    assert r.status_code == 409
    assert smtp_server.messages == []


def test_a_slow_smtp_server_does_not_hold_up_other_requests(
    client: httpx.Client, admin: Admin, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    smtp_server.script("slow@example.com", slow(3))
    configure(client, admin, **config_body(smtp_server))
    other = login(client, make_user(runtime, make_org(runtime), "ADMIN"))

    def test_send() -> httpx.Response:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
            return send_test(own, admin, "slow@example.com")

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(test_send)
        time.sleep(0.5)  # the test message is now waiting on the server
        started = time.monotonic()
        saved = client.put("/api/settings/email", json=config_body(), headers=other)
        took = time.monotonic() - started
        sent = pending.result()

    assert saved.status_code == 200, saved.text
    assert took < 2, f"a write waited {took:.1f}s for the test message"
    assert sent.status_code == 200, sent.text
