"""The Settings pages in a real browser: email configuration with a real SMTP test message,
users, and MFA enrolment on My account."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import expect
from sqlalchemy import select

from herald.mailconfig import service as mailconfig
from herald.orgs.models import User
from tests.browser.conftest import log_in
from tests.orgs.factories import PASSWORD, make_org, make_user
from tests.smtp_server import reject, smtp_server, start_smtp_server  # noqa: F401

SMTP_PASSWORD = "smtp-pass-9f3k"


def test_email_configuration_is_saved_and_the_test_email_reports_the_servers_answer(
    page,
    runtime,
    start_smtp_server,  # noqa: F811
):
    # Herald logs in only over TLS (issue 13.1): a STARTTLS server.
    server = start_smtp_server(tls="starttls", credentials=("mailer", SMTP_PASSWORD))
    org = make_org(runtime)
    admin = make_user(runtime, org, "ADMIN")
    log_in(page, admin)
    page.goto("/settings")
    page.get_by_role("link", name="Email configuration").click()
    expect(page.get_by_role("button", name="Send test email")).to_be_disabled()

    page.get_by_label("Host", exact=True).fill(server.host)
    page.get_by_label("Port", exact=True).fill(str(server.port))
    page.get_by_label("Security", exact=True).select_option("starttls")
    page.get_by_label("Username", exact=True).fill("mailer")
    page.get_by_label("Password", exact=True).fill(SMTP_PASSWORD)
    page.get_by_label("Default from name").fill("Herald Browser")
    page.get_by_label("Default from email").fill("news@example.com")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")
    expect(page.get_by_label("Host", exact=True)).to_have_value(server.host)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert SMTP_PASSWORD not in page.content()
    expect(page.locator("#password-hint")).to_contain_text("leave this empty to keep it")
    with runtime.sessions() as session:
        row = mailconfig.get_config(session, org.id)
        assert row is not None and row.port == server.port and row.password_sealed

    page.get_by_label("Send to").fill("inbox@example.com")
    page.get_by_role("button", name="Send test email").click()
    answer = page.get_by_role("status")
    expect(answer).to_contain_text("accepted the test message")
    expect(answer).to_contain_text("250")
    received = server.wait_for_messages(1)
    assert received[0].rcpt_tos == ["inbox@example.com"]
    assert received[0].login == "mailer"  # the stored, write-only password was used
    assert received[0].message["Subject"] == "Herald test message"
    assert received[0].message["From"].addresses[0].addr_spec == "news@example.com"


def test_a_refused_test_email_shows_the_error_and_a_bad_port_is_shown_inline(
    page,
    runtime,
    smtp_server,  # noqa: F811
):
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/settings/email")
    page.get_by_label("Host", exact=True).fill(smtp_server.host)
    page.get_by_label("Port", exact=True).fill("not-a-port")
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_label("Default from email").fill("news@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#port-error")).to_be_visible()
    expect(page.get_by_label("Host", exact=True)).to_have_value(smtp_server.host)

    page.get_by_label("Port", exact=True).fill(str(smtp_server.port))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")

    smtp_server.script("nobody@example.com", reject("550 5.1.1 No such user"))
    page.get_by_label("Send to").fill("nobody@example.com")
    page.get_by_role("button", name="Send test email").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("refused the recipient")
    expect(alert).to_contain_text("550")


def test_email_configuration_is_admin_only(page, runtime):
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "MANAGER"))
    page.goto("/settings")
    expect(page.get_by_role("link", name="Email configuration")).to_have_count(0)
    page.goto("/settings/email")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    page.goto("/settings/users")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_an_admin_creates_a_manager_and_changes_a_role(page, runtime):
    org = make_org(runtime)
    admin = make_user(runtime, org, "ADMIN")
    log_in(page, admin)
    page.goto("/settings/users")
    expect(page.locator("tbody")).to_contain_text(admin.email)

    email = f"manager-{time.time_ns()}@example.com"
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Role", exact=True).select_option("MANAGER")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#password-error")).to_contain_text("at least 8 characters")
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Role", exact=True).select_option("MANAGER")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("User created.")
    row = page.locator("tbody tr", has_text=email)
    expect(row.locator(".badge")).to_have_text("MANAGER")
    with runtime.sessions() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        assert user.role == "MANAGER" and user.org_id == org.id

    row.get_by_label(f"Role of {email}").select_option("USER")
    row.get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status")).to_have_text("Role changed.")
    expect(page.locator("tbody tr", has_text=email).locator(".badge")).to_have_text("USER")


def test_mfa_enrolment_on_my_account_then_login_needs_the_code(page, runtime):
    org = make_org(runtime)
    user = make_user(runtime, org, "USER")
    log_in(page, user)
    page.goto("/settings")
    page.get_by_role("link", name="My account").click()
    page.get_by_role("button", name="Set up MFA").click()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = page.locator("#mfa-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)

    page.get_by_label("Code from your app").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on MFA").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match")

    page.get_by_label("Code from your app").fill(totp.now())
    page.get_by_role("button", name="Turn on MFA").click()
    expect(page.get_by_text("MFA is on.")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("MFA code")

    # The code just used is burnt; the next time step's code is within the accepted window.
    page.get_by_label("Password").fill(user.password)
    page.get_by_label(re.compile("MFA code")).fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto("/settings/account")
    expect(page.get_by_text("MFA is on.")).to_be_visible()
    expect(page.locator(".whoami")).to_contain_text(user.email)
