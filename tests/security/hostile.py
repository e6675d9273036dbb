"""Helpers for the adversarial-input tests: sending a campaign over real SMTP, logging in to
the pages, and checking a received message is one well-formed message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx

from herald.runtime import Runtime
from tests.marketing.engine import InProcessWorker, configure_smtp, fast_runtime, wait_for_status
from tests.marketing.factories import (
    Caller,
    caller,
    configure_email,
    create_campaign,
    retire_queue,
)
from tests.smtp_server import Received, SmtpServer

API = "/api/marketing"

# The headers a campaign message carries, and nothing else.
MESSAGE_HEADERS = {
    "from", "to", "subject", "date", "message-id", "mime-version", "list-unsubscribe",
    "list-unsubscribe-post", "content-type", "feedback-id", "list-id",
}  # fmt: skip


def fresh_admin(client: httpx.Client, runtime: Runtime) -> Iterator[Caller]:
    """The ADMIN of a fresh org licensed for marketing, logged in over the API; the org's
    sends still queued afterwards are retired. Each test module wraps it in a fixture."""
    yield caller(client, runtime)
    retire_queue(runtime)


def page_headers(who: Caller) -> dict[str, str]:
    """The pages take the API's access token as the ``herald_access`` cookie."""
    token = who.headers["Authorization"].split(" ", 1)[1]
    return {"Accept": "text/html", "Cookie": f"herald_access={token}"}


def launched_exports(
    client: httpx.Client, runtime: Runtime, admin: Caller, name: str
) -> dict[str, httpx.Response]:
    """A campaign to all the org's contacts, launched, and its sends.csv as the API and the
    page's download give it."""
    configure_email(runtime, admin.org_id)
    campaign = client.post(
        f"{API}/campaigns", json={"name": name, "subject": "Hi"}, headers=admin.headers
    ).json()
    launched = client.post(f"{API}/campaigns/{campaign['id']}/launch", headers=admin.headers)
    assert launched.status_code == 202, launched.text
    return {
        "api": client.get(f"{API}/campaigns/{campaign['id']}/sends.csv", headers=admin.headers),
        "page": client.get(
            f"/marketing/campaigns/{campaign['id']}/sends.csv", headers=page_headers(admin)
        ),
    }


def send_over_smtp(
    client: httpx.Client,
    runtime: Runtime,
    server: SmtpServer,
    who: Caller,
    expected: int,
    **campaign: Any,
) -> list[Received]:
    """A campaign made over the API, launched over the API and sent by a real worker to
    ``server``; the messages it received (``expected`` of them)."""
    configure_smtp(runtime, who.org_id, server.port)
    made = create_campaign(client, who, **campaign)
    launched = client.post(f"{API}/campaigns/{made['id']}/launch", headers=who.headers)
    assert launched.status_code == 202, launched.text
    assert launched.json()["recipients"] == expected
    with InProcessWorker(fast_runtime(runtime)):
        wait_for_status(runtime, uuid.UUID(made["id"]), "SENT", timeout=30)
    return server.wait_for_messages(expected)


def parse_strictly(raw: bytes) -> EmailMessage:
    """The message, after checking CRLF-only lines and that the parser found no defect."""
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert part.defects == [], part.defects
        for name, value in part.items():
            assert value.defects == (), (name, value.defects)
    return message


def header_names(raw: bytes) -> set[str]:
    """The top-level header names, read from the wire (continuation lines skipped)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return {line.split(":", 1)[0].lower() for line in head.split("\r\n") if not line[:1].isspace()}
