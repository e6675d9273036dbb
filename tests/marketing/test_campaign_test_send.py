"""POST /api/marketing/campaigns/{id}/test over real HTTP to a real SMTP server: the campaign
as its first eligible contact gets it, "[Test] " first, counted nowhere; and the service's
composing checked through the in-memory Mailer."""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from herald.db import unit_of_work
from herald.mail.mailer import InMemoryMailer
from herald.mail.smtp import SmtpSettings
from herald.marketing import preview
from herald.marketing.models import MarketingSend
from tests.mailconfig.factories import configure_smtp
from tests.marketing.factories import (
    Caller,
    add_contact,
    assert_error,
    caller,
    create_campaign,
)
from tests.smtp_server import SmtpServer, reject

API = "/api/marketing/campaigns"


def sends_of(runtime, campaign_id: str) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        stmt = select(func.count()).where(MarketingSend.campaign_id == uuid.UUID(campaign_id))
        return int(session.scalar(stmt) or 0)


def arrange(client, runtime, smtp_server: SmtpServer) -> tuple[Caller, dict[str, Any]]:
    """An ADMIN whose org sends through ``smtp_server``, and a DRAFT of theirs."""
    admin = caller(client, runtime)
    configure_smtp(runtime, admin.org_id, smtp_server)
    return admin, create_campaign(client, admin)


def send_test(client, admin: Caller, campaign: dict[str, Any], *to: str) -> httpx.Response:
    return client.post(f"{API}/{campaign['id']}/test", json={"to": list(to)}, headers=admin.headers)


def test_the_test_goes_to_each_address_as_the_first_contact_gets_it(
    client, runtime, smtp_server: SmtpServer
) -> None:
    admin, campaign = arrange(client, runtime, smtp_server)
    add_contact(runtime, admin.org_id, "noor@example.com", first_name="Noor")
    add_contact(runtime, admin.org_id, "zed@example.com", first_name="Zed")

    r = send_test(client, admin, campaign, "qa@example.com", "boss@example.com")

    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(a["to"], a["ok"], a["code"]) for a in results] == [
        ("qa@example.com", True, 250),
        ("boss@example.com", True, 250),
    ]
    assert all(a["message"].startswith("2.0.0 Ok") for a in results)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["qa@example.com"], ["boss@example.com"]]
    message = smtp_server.messages[0].message
    assert message["Subject"] == "[Test] Hello Noor"
    assert "Hi Noor" in message.get_body(preferencelist=("plain",)).get_content()
    shown = client.get(f"{API}/{campaign['id']}", headers=admin.headers).json()
    assert (shown["status"], shown["recipients"], shown["delivered"]) == ("DRAFT", 0, 0)
    assert sends_of(runtime, campaign["id"]) == 0


def test_a_refusal_is_reported_per_address(client, runtime, smtp_server: SmtpServer) -> None:
    admin, campaign = arrange(client, runtime, smtp_server)
    smtp_server.script("ghost@example.com", reject("550 5.1.1 No such user"))

    r = send_test(client, admin, campaign, "ghost@example.com", "qa@example.com")

    assert r.status_code == 200, r.text
    ghost, qa = r.json()["results"]
    assert (ghost["ok"], ghost["code"]) == (False, 550)
    assert "ghost@example.com" in ghost["message"]
    assert (qa["ok"], qa["code"]) == (True, 250)


@pytest.mark.parametrize(
    "body",
    [
        {"to": []},
        {"to": [f"a{i}@example.com" for i in range(6)]},
        {"to": ["not-an-address"]},
        {"to": ["a@example.com\r\nBcc: b@example.com"]},
        {"to": "a@example.com"},
        {},
    ],
)
def test_bad_input_is_a_422_naming_to(client, runtime, smtp_server: SmtpServer, body) -> None:
    admin = caller(client, runtime)
    configure_smtp(runtime, admin.org_id, smtp_server)
    campaign = create_campaign(client, admin)

    r = client.post(f"{API}/{campaign['id']}/test", json=body, headers=admin.headers)

    error = assert_error(r, 422, "validation_error")
    assert any(str(d["field"]).startswith("to") for d in error["details"]), error
    assert smtp_server.messages == []


def test_only_an_admin_of_the_org_may_send_a_test(client, runtime, smtp_server) -> None:
    admin = caller(client, runtime)
    configure_smtp(runtime, admin.org_id, smtp_server)
    campaign = create_campaign(client, admin)
    manager = caller(client, runtime, "MANAGER", org_id=admin.org_id)
    stranger = caller(client, runtime)
    body = {"to": ["qa@example.com"]}

    as_manager = client.post(f"{API}/{campaign['id']}/test", json=body, headers=manager.headers)
    as_stranger = client.post(f"{API}/{campaign['id']}/test", json=body, headers=stranger.headers)

    assert_error(as_manager, 403, "role_required")
    assert_error(as_stranger, 404, "not_found")
    assert smtp_server.messages == []


def test_without_email_configuration_it_is_a_conflict(client, runtime) -> None:
    admin = caller(client, runtime)
    campaign = create_campaign(client, admin)

    r = client.post(f"{API}/{campaign['id']}/test", json={"to": ["a@b.com"]}, headers=admin.headers)

    assert_error(r, 409, "smtp_not_configured")


def test_the_campaign_test_shares_the_orgs_rate_limit(
    client, runtime, smtp_server: SmtpServer
) -> None:
    admin = caller(client, runtime)
    configure_smtp(runtime, admin.org_id, smtp_server)
    campaign = create_campaign(client, admin)
    five = {"to": [f"qa{i}@example.com" for i in range(5)]}
    url = f"{API}/{campaign['id']}/test"

    answers = [client.post(url, json=five, headers=admin.headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert_error(answers[-1], 429, "rate_limited")
    assert len(smtp_server.messages) == 10


def test_the_service_composes_through_any_mailer(client, runtime) -> None:
    """The in-memory Mailer: what the test send hands to the mailer, without a server."""
    admin = caller(client, runtime)
    configure_smtp(
        runtime, admin.org_id, SmtpServer(port=2525), username="", defaultFromEmail="d@x.example"
    )
    add_contact(runtime, admin.org_id, "noor@example.com", first_name="Noor")
    campaign = create_campaign(client, admin, fromEmail="")
    mailers: list[InMemoryMailer] = []

    def factory(settings: SmtpSettings, size: int) -> InMemoryMailer:
        mailers.append(InMemoryMailer(settings, size))
        return mailers[-1]

    with unit_of_work(runtime.sessions, write=False) as session:
        test = preview.prepare_test_send(
            session, runtime.settings, admin.org_id, campaign["id"], ["QA@example.com "]
        )
    answers = asyncio.run(preview.send_test(test, factory))

    assert [(a.to, a.ok, a.code) for a in answers] == [("QA@example.com", True, 250)]
    [sent] = mailers[0].sent
    assert mailers[0].closed and sent.sender == "d@x.example"
    message = message_from_bytes(sent.message, policy=policy.default)
    assert message["Subject"] == "[Test] Hello Noor"
    assert str(message["To"]) == "Noor Lovelace <QA@example.com>"
    assert "/u/test" in message["List-Unsubscribe"]
