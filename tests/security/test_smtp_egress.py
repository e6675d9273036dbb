"""Issue 13, finding 2: the SMTP host must be a public address (at save and again at connect
time), a failed test message reads the same whatever answered, and test messages are
rate limited. The app here runs with the default settings: no network is allowed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from herald.mail import egress, testsend
from herald.mail.smtp import SmtpConnection, SmtpSettings
from tests.conftest import LiveServer
from tests.line_server import LineServer
from tests.mailconfig.factories import config_body
from tests.orgs.factories import login, make_org, make_user
from tests.smtp_server import free_port

URL = "/api/settings/email"

REFUSED_SPELLINGS = [
    "localhost",
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "[::1]",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",  # noqa: S104 (a host to refuse, not a bind)
    "169.254.169.254",
    "10.0.0.8",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "fe80::1",
    "fc00::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]


@pytest.fixture
def strict(start_server: Callable[..., LiveServer]) -> Iterator[httpx.Client]:
    """A client of an app with the default egress rule (the suite's own allows loopback)."""
    server = start_server(smtp_allowed_networks="")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def admin_headers(client: httpx.Client, runtime) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return login(client, make_user(runtime, make_org(runtime), "ADMIN"))


@pytest.mark.parametrize("host", REFUSED_SPELLINGS)
def test_non_public_hosts_are_refused_at_save_in_any_spelling(
    strict: httpx.Client, runtime, host: str
) -> None:
    headers = admin_headers(strict, runtime)

    r = strict.put(URL, json=config_body(host=host), headers=headers)

    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "smtp_host_not_allowed"
    assert [d["field"] for d in error["details"]] == ["host"]
    assert strict.get(URL, headers=headers).json()["configured"] is False


def test_public_addresses_are_saved(strict: httpx.Client, runtime) -> None:
    headers = admin_headers(strict, runtime)
    r = strict.put(URL, json=config_body(host="8.8.4.4"), headers=headers)
    assert r.status_code == 200, r.text


def test_the_operator_allows_networks(start_server: Callable[..., LiveServer], runtime) -> None:
    server = start_server(smtp_allowed_networks="10.0.0.0/8, 127.0.0.0/8")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = admin_headers(client, runtime)
        for host in ("10.1.2.3", "127.1", "0x7f000001"):
            r = client.put(URL, json=config_body(host=host), headers=headers)
            assert r.status_code == 200, (host, r.text)
        r = client.put(URL, json=config_body(host="192.168.1.1"), headers=headers)
        assert r.status_code == 422


def test_a_host_refused_again_at_connect_time_after_a_dns_change(
    strict: httpx.Client, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved while it did not resolve (or resolved to a public address); it now points at
    loopback: the test message connects nowhere."""
    listener = LineServer().start()
    try:
        headers = admin_headers(strict, runtime)
        body = config_body(host="mail.rebinding.test", port=listener.port, security="none")
        assert strict.put(URL, json=body, headers=headers).status_code == 200

        async def rebound(host: str, port: int) -> list[str]:
            return ["8.8.4.4", "127.0.0.1"]  # one refused address is enough

        monkeypatch.setattr(egress, "resolve", rebound)
        r = strict.post(f"{URL}/test", json={"to": "a@example.com"}, headers=headers)
    finally:
        listener.stop()

    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "smtp_host_not_allowed"
    assert listener.lines == []


def test_herald_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name is resolved once, by the rule's resolver; the connection goes to that address."""
    listener = LineServer().start()
    seen: list[str] = []

    async def resolved(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(egress, "resolve", resolved)
    smtp = SmtpSettings(
        "mail.only-in-our-resolver.test",
        listener.port,
        "none",
        timeout=5,
        allowed_networks=egress.parse_networks("127.0.0.0/8"),
    )

    async def connect() -> None:
        conn = await SmtpConnection.open(smtp)
        await conn.close()

    try:
        asyncio.run(connect())
    finally:
        listener.stop()
    assert seen == ["mail.only-in-our-resolver.test"]
    assert listener.commands()[:1] == ["EHLO"]


def _failure(client: httpx.Client, headers: dict[str, str], port: int) -> dict[str, object]:
    body = config_body(host="127.0.0.1", port=port, security="none")
    assert client.put(URL, json=body, headers=headers).status_code == 200
    r = client.post(f"{URL}/test", json={"to": "a@example.com"}, headers=headers)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    return {**error, "message": re.sub(r":\d+", ":PORT", error["message"])}


def test_a_failed_test_message_shows_no_foreign_bytes_and_is_no_port_scanner(
    client: httpx.Client, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's app allows loopback. A closed port, a silent service and an SSH server
    answer the very same error, with none of the banner's bytes."""
    monkeypatch.setattr(testsend, "TIMEOUT_SECONDS", 1.0)
    headers = admin_headers(client, runtime)
    ssh = LineServer(smtp=False, banner=b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n").start()
    silent = LineServer(smtp=False).start()
    try:
        answers = [
            _failure(client, headers, free_port()),
            _failure(client, headers, silent.port),
            _failure(client, headers, ssh.port),
        ]
    finally:
        ssh.stop()
        silent.stop()

    assert answers[0] == answers[1] == answers[2]
    assert "did not answer as an SMTP server" in str(answers[0]["message"])
    for answer in answers:
        assert "SSH" not in str(answer) and "OpenSSH" not in str(answer)
        assert "refused" not in str(answer).lower() and "time" not in str(answer).lower()


def test_test_messages_are_rate_limited_per_org(client: httpx.Client, runtime) -> None:
    listener = LineServer().start()
    try:
        headers = admin_headers(client, runtime)
        body = config_body(host="127.0.0.1", port=listener.port, security="none")
        assert client.put(URL, json=body, headers=headers).status_code == 200
        answers = [
            client.post(f"{URL}/test", json={"to": "a@example.com"}, headers=headers)
            for _ in range(11)
        ]
        other = admin_headers(client, runtime)  # another org keeps its own allowance
        assert client.put(URL, json=body, headers=other).status_code == 200
        others = client.post(f"{URL}/test", json={"to": "a@example.com"}, headers=other)
    finally:
        listener.stop()

    assert [a.status_code for a in answers] == [200] * 10 + [429]
    error = answers[-1].json()["error"]
    assert error["code"] == "rate_limited" and error["message"]
    assert "details" in error
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert others.status_code == 200
    assert listener.commands().count("DATA") == 11
