"""My account in a real browser: reached from the layout, the password changed (the old one
then refused), and "Sign out everywhere" ending the session."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.orgs.factories import make_org, make_user


def test_change_the_password_then_sign_out_everywhere(page, runtime):
    user = make_user(runtime, make_org(runtime), "USER")
    log_in(page, user)
    page.locator(".whoami").get_by_role("link", name=user.email).click()
    expect(page).to_have_url(re.compile(r"/settings/account$"))

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("current password is incorrect")

    page.get_by_label("Current password").fill(user.password)
    page.get_by_label("New password").fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed")
    page.goto("/crm/contacts")  # this session goes on with the new tokens
    expect(page).to_have_url(re.compile(r"/crm/contacts$"))

    page.goto("/settings/account")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/crm/contacts")
    expect(page).to_have_url(re.compile(r"/login"))

    user.password = "a brand new password"
    log_in(page, user)
    expect(page).to_have_url(re.compile(r"/crm/contacts"))
