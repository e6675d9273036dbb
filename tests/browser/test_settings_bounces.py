"""Settings → Email configuration's bounce mailbox and mail services' webhooks, in a real
browser: saved with write-only secrets, the webhook URLs shown ready to copy, new URLs made."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from herald.mailconfig import service as mailconfig
from tests.bounces.payloads import SendgridSigner
from tests.browser.conftest import log_in
from tests.orgs.factories import make_org, make_user

MAILBOX_PASSWORD = "imap-pass-7Yt2"
MAILGUN_KEY = "key-mailgun-signing-4f1d"


def test_bounce_mailbox_and_webhook_keys_are_saved_and_the_urls_shown(page, runtime) -> None:
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/settings/email")
    expect(page.get_by_role("heading", name="Webhook URLs")).to_have_count(0)  # nothing saved

    page.locator("#host").fill("smtp.example.com")
    page.locator("#default_from_email").fill("news@example.com")
    page.get_by_label("IMAP host").fill("127.0.0.1")
    page.locator("#mailbox_security").select_option("starttls")
    page.locator("#mailbox_username").fill("bounces@example.com")
    page.locator("#mailbox_password").fill(MAILBOX_PASSWORD)
    key = SendgridSigner().verification_key
    page.get_by_label("SendGrid verification key").fill(key)
    page.get_by_label("Mailgun HTTP webhook signing key").fill(MAILGUN_KEY)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")
    expect(page.get_by_label("IMAP host")).to_have_value("127.0.0.1")
    expect(page.locator("#mailbox_port")).to_have_value("143")
    expect(page.locator("#mailbox_password")).to_have_value("")
    expect(page.locator("#mailbox-password-hint")).to_contain_text("A password is stored")
    expect(page.locator("#mailgun-hint")).to_contain_text("A key is stored")
    expect(page.locator("#mailbox-status")).to_contain_text("Not read yet")
    assert MAILBOX_PASSWORD not in page.content() and MAILGUN_KEY not in page.content()
    with runtime.sessions() as session:
        row = mailconfig.get_config(session, org.id)
        assert row is not None and row.webhook_key
        old_key = row.webhook_key
    for provider in ("ses", "sendgrid", "mailgun", "postmark"):
        url = page.locator(f"#webhook_{provider}")
        expect(url).to_have_value(re.compile(rf"/webhooks/{provider}/{re.escape(old_key)}$"))
    expect(page.locator("#postmark_username")).to_have_text("herald")

    page.get_by_role("button", name="Make new webhook URLs").click()

    expect(page.get_by_role("status")).to_contain_text("the old ones no longer work")
    with runtime.sessions() as session:
        row = mailconfig.get_config(session, org.id)
        assert row is not None and row.webhook_key != old_key
        new_key = row.webhook_key
    expect(page.locator("#webhook_mailgun")).to_have_value(re.compile(rf"{re.escape(new_key)}$"))

    # no host: no mailbox any more
    page.get_by_label("IMAP host").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")
    expect(page.locator("#mailbox-status")).to_have_count(0)


def test_a_bad_sendgrid_key_is_named_and_nothing_is_saved(page, runtime) -> None:
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/settings/email")
    page.locator("#host").fill("smtp.example.com")
    page.locator("#default_from_email").fill("news@example.com")
    page.get_by_label("SendGrid verification key").fill("not a key")
    page.get_by_role("button", name="Save").click()

    expect(page.locator("#sendgrid_verification_key")).to_have_attribute("aria-invalid", "true")
    with runtime.sessions() as session:
        assert mailconfig.get_config(session, org.id) is None
