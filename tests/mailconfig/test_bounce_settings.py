"""The bounce settings of Email configuration over HTTP: write-only secrets, the mailbox
password bound to its destination, key checks, webhook URLs and their regeneration."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from herald.mailconfig.inbound import mailbox_box, webhook_box
from herald.mailconfig.models import EmailConfig
from herald.runtime import Runtime
from tests.bounces.payloads import SendgridSigner
from tests.mailconfig.conftest import Admin
from tests.mailconfig.factories import config_body

URL = "/api/settings/email"
MAILBOX = {"host": "127.0.0.1", "username": "bounces@example.com", "password": "imap-secret"}


def _row(runtime: Runtime, admin: Admin) -> EmailConfig:
    with runtime.sessions() as session:
        return session.scalars(
            select(EmailConfig).where(EmailConfig.org_id == admin.user.org_id)
        ).one()


def test_secrets_are_write_only_and_sealed(
    client: httpx.Client, runtime: Runtime, admin: Admin
) -> None:
    key = SendgridSigner().verification_key
    body = config_body(
        bounceMailbox=MAILBOX, mailgunSigningKey="mg-key", sendgridVerificationKey=key
    )
    shown = client.put(URL, headers=admin.headers, json=body).json()

    assert shown["bounceMailbox"] == {
        "host": "127.0.0.1",
        "port": 993,
        "username": "bounces@example.com",
        "security": "tls",
        "folder": "INBOX",
        "passwordSet": True,
        "polledAt": None,
        "pollError": None,
        "processedLast": 0,
    }
    assert shown["mailgunSigningKeySet"] is True and "mailgunSigningKey" not in shown
    assert shown["sendgridVerificationKey"] == key
    assert "imap-secret" not in client.get(URL, headers=admin.headers).text
    row = _row(runtime, admin)
    assert (
        mailbox_box(runtime.settings).open(row.bounce_mailbox_password_sealed or "")
        == "imap-secret"
    )
    assert webhook_box(runtime.settings).open(row.mailgun_signing_key_sealed or "") == "mg-key"
    assert "imap-secret" not in (row.bounce_mailbox_password_sealed or "")


def test_leaving_the_bounce_fields_out_keeps_them(client: httpx.Client, admin: Admin) -> None:
    client.put(
        URL, headers=admin.headers, json=config_body(bounceMailbox=MAILBOX, mailgunSigningKey="k")
    )
    shown = client.put(
        URL, headers=admin.headers, json=config_body(defaultFromName="Renamed")
    ).json()

    assert shown["bounceMailbox"]["passwordSet"] is True
    assert shown["mailgunSigningKeySet"] is True

    cleared = client.put(
        URL, headers=admin.headers, json=config_body(bounceMailbox=None, mailgunSigningKey="")
    ).json()
    assert cleared["bounceMailbox"] is None and cleared["mailgunSigningKeySet"] is False


def test_the_mailbox_password_belongs_to_its_destination(
    client: httpx.Client, admin: Admin
) -> None:
    client.put(URL, headers=admin.headers, json=config_body(bounceMailbox=MAILBOX))
    same = {k: v for k, v in MAILBOX.items() if k != "password"}

    kept = client.put(URL, headers=admin.headers, json=config_body(bounceMailbox=same)).json()
    moved = client.put(
        URL, headers=admin.headers, json=config_body(bounceMailbox={**same, "security": "starttls"})
    ).json()

    assert kept["bounceMailbox"]["passwordSet"] is True
    assert moved["bounceMailbox"]["passwordSet"] is False
    assert moved["bounceMailbox"]["port"] == 143


def test_bad_keys_and_folders_are_422_naming_the_field(client: httpx.Client, admin: Admin) -> None:
    for field, value in [
        ("sendgridVerificationKey", "not a key"),
        ("sendgridVerificationKey", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        ("bounceMailbox", {**MAILBOX, "folder": "Herald/Processed"}),
        ("bounceMailbox", {**MAILBOX, "security": "none"}),
    ]:
        r = client.put(URL, headers=admin.headers, json=config_body(**{field: value}))
        assert r.status_code == 422, (field, value, r.text)
        assert r.json()["error"]["details"][0]["field"].startswith(field)


def test_webhook_urls_and_regeneration(client: httpx.Client, admin: Admin) -> None:
    before = client.post(f"{URL}/webhook-key", headers=admin.headers)
    assert before.status_code == 409
    assert before.json()["error"]["code"] == "smtp_not_configured"

    first = client.put(URL, headers=admin.headers, json=config_body()).json()
    key = first["webhookKey"]
    assert len(key) >= 43
    assert first["webhookUrls"] == {
        name: f"https://herald.test/webhooks/{name}/{key}"
        for name in ("ses", "sendgrid", "mailgun", "postmark")
    }
    assert first["postmarkUsername"] == "herald" and len(first["postmarkPassword"]) >= 32

    again = client.post(f"{URL}/webhook-key", headers=admin.headers).json()
    assert again["webhookKey"] != key
    assert again["postmarkPassword"] != first["postmarkPassword"]
    assert client.get(URL, headers=admin.headers).json()["webhookKey"] == again["webhookKey"]
    audit = client.get("/api/settings/audit", headers=admin.headers).json()["items"]
    assert audit[0]["action"] == "email_config.webhook_key_regenerated"
