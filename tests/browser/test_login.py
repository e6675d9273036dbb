"""Logging in and out in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.orgs.factories import make_org, make_user


def test_login_with_mfa_lands_on_marketing_and_logout_ends_the_session(page, runtime):
    user = make_user(runtime, make_org(runtime), "ADMIN", mfa=True)
    page.goto("/marketing")
    expect(page).to_have_url(re.compile(r"/login\?next=/marketing"))
    log_in(page, user)
    expect(page).to_have_url(re.compile(r"/marketing$"))
    expect(page.get_by_role("navigation")).to_contain_text("Marketing")
    expect(page.locator(".whoami")).to_contain_text(user.email)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/marketing")
    expect(page).to_have_url(re.compile(r"/login"))


def test_a_wrong_mfa_code_is_refused_with_a_message(page, runtime):
    user = make_user(runtime, make_org(runtime), "ADMIN", mfa=True)
    page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_label(re.compile("MFA code")).fill("000000")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("MFA code")
    expect(page).to_have_url(re.compile(r"/login"))


def test_the_sidebar_hides_marketing_without_the_licence(page, runtime):
    user = make_user(runtime, make_org(runtime, features=()), "ADMIN")
    log_in(page, user)
    expect(page).to_have_url(re.compile(r"/crm/contacts"))
    expect(page.get_by_role("navigation")).not_to_contain_text("Marketing")
    page.goto("/marketing")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
