"""The bounce pages in a real browser: Marketing → Bounces and a report as received, the
campaign's Bounced figure and its email log, the contact's email status and its reset, and
the bounce settings."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from herald.dev.bouncer import feedback_report
from herald.mail.sendref import make_message_id
from tests.bounces.factories import (
    bounce,
    bounce_org,
    contact,
    contact_row,
    delivered_campaign,
    receive,
)
from tests.browser.conftest import log_in
from tests.orgs.factories import make_user


def arranged(runtime):
    """An org whose campaign had one hard bounce and one complaint."""
    org = bounce_org(runtime)
    gone, angry, fine = (contact(runtime, org) for _ in range(3))
    campaign_id, sends = delivered_campaign(runtime, org, [gone, angry, fine])
    bounce(runtime, org, sends[0], gone.email)
    mid = make_message_id(org.keys(runtime).message_id, sends[1], "acme.example.com")
    original = f"To: {angry.email}\r\nMessage-ID: {mid}\r\nSubject: <b>hi</b>\r\n\r\n".encode()
    receive(
        runtime,
        org,
        feedback_report(to="fbl@acme.example.com", recipient=angry.email, original=original),
    )
    return org, campaign_id, sends, gone, angry


def test_marketing_bounces_lists_reports_filters_them_and_shows_one_as_received(page, runtime):
    org, _campaign_id, _sends, gone, angry = arranged(runtime)
    log_in(page, make_user(runtime, org.org_id, "ADMIN"))
    page.goto("/marketing")
    page.get_by_role("link", name="Bounces").click()

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_text("2 report(s)")).to_be_visible()
    expect(rows.nth(0)).to_contain_text("Complaint")
    expect(rows.nth(0)).to_contain_text(angry.email)
    expect(rows.nth(1)).to_contain_text("Hard bounce")
    expect(rows.nth(1)).to_contain_text("User unknown")

    page.get_by_label("Type").select_option("hard")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"type=hard"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(gone.email)

    rows.first.get_by_role("link", name=re.compile("report as received")).click()
    expect(page.get_by_role("heading", name=re.compile("Bounce report"))).to_be_visible()
    raw = page.locator("pre.raw-report")
    expect(raw).to_contain_text("Undelivered Mail Returned to Sender")
    expect(raw).to_contain_text("Status: 5.1.1")
    expect(page.get_by_text("matched by tag")).to_be_visible()


def test_a_manager_sees_the_list_but_not_the_raw_reports(page, runtime):
    org, *_ = arranged(runtime)
    log_in(page, make_user(runtime, org.org_id, "MANAGER"))
    page.goto("/marketing/bounces")
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name=re.compile("report as received"))).to_have_count(0)
    expect(page.get_by_text("Only an ADMIN can read the reports as received.")).to_be_visible()


def test_the_campaign_shows_bounced_and_its_log_the_bounce_with_its_report(page, runtime):
    org, campaign_id, sends, gone, _angry = arranged(runtime)
    log_in(page, make_user(runtime, org.org_id, "MANAGER"))
    page.goto(f"/marketing/campaigns/{campaign_id}")

    kpis = page.get_by_label("Results")
    expect(kpis.locator(".kpi", has_text="Bounced").locator(".value")).to_have_text("1")
    expect(kpis.locator(".kpi", has_text="Complaints").locator(".value")).to_have_text("1")
    expect(kpis.locator(".kpi", has_text="Failed").locator(".value")).to_have_text("1")
    expect(kpis.locator(".kpi", has_text="Delivered").locator(".value")).to_have_text("2")

    page.get_by_role("link", name="Bounced sends").click()
    expect(page.get_by_label("Status")).to_have_value("BOUNCED")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(gone.email)
    expect(rows.first).to_contain_text("hard")
    expect(rows.first).to_contain_text("User unknown")
    rows.first.get_by_role("link", name=f"Bounce reports of {gone.email}").click()
    expect(page).to_have_url(re.compile(rf"/marketing/bounces\?send={sends[0]}"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text("Hard bounce")


def test_the_contact_shows_its_email_status_and_an_admin_resets_it(page, runtime):
    org, _campaign_id, _sends, gone, _angry = arranged(runtime)
    log_in(page, make_user(runtime, org.org_id, "MANAGER"))
    page.goto(f"/crm/contacts/{gone.id}")
    expect(page.get_by_test_id("email-status")).to_have_text("BOUNCED")
    expect(page.get_by_test_id("email-status-reason")).to_contain_text("User unknown")
    expect(page.get_by_role("button", name="Reset to OK")).to_be_disabled()
    expect(page.get_by_text("Only an ADMIN can reset the email status.")).to_be_visible()

    page.context.clear_cookies()
    log_in(page, make_user(runtime, org.org_id, "ADMIN"))
    page.goto("/crm/contacts")
    expect(page.locator("tbody tr", has_text=gone.email)).to_contain_text("BOUNCED")
    page.goto(f"/crm/contacts/{gone.id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset to OK").click()
    expect(page.get_by_text("Email status reset to OK")).to_be_visible()
    expect(page.get_by_test_id("email-status")).to_have_text("OK")
    assert contact_row(runtime, gone.id).email_status == "OK"


def test_the_bounce_address_is_set_in_email_configuration(page, runtime):
    org = bounce_org(runtime)
    log_in(page, make_user(runtime, org.org_id, "ADMIN"))
    page.goto("/settings/email")
    address = page.get_by_label("Bounce address")
    expect(address).to_have_value(org.bounce_address)

    address.fill("bounces+nope@mail.example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#bounceAddress-error")).to_contain_text('"+"')

    address.fill("News-Bounces@Mail.Example.com")
    page.get_by_label("Soft bounces before suppressing").fill("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Email configuration saved.")).to_be_visible()
    expect(page.get_by_label("Bounce address")).to_have_value("news-bounces@mail.example.com")
    expect(page.get_by_label("Soft bounces before suppressing")).to_have_value("5")
