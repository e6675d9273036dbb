"""Settings → Audit log in a real browser: what an ADMIN's own clicks record, shown newest
first, a page at a time, as text, with nothing fetched from elsewhere; hidden from others."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from herald.audit import service as audit
from herald.db import unit_of_work
from tests.browser.conftest import log_in
from tests.crm.factories import make_contact, unique_email
from tests.orgs.factories import login, make_org, make_user

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">Sale'


def rows(page):  # type: ignore[no-untyped-def]
    return page.locator("table tbody tr")


def test_an_admins_changes_are_listed_newest_first_as_text(page, runtime, web):
    org = make_org(runtime)
    admin = make_user(runtime, org, "ADMIN")
    contact = make_contact(runtime, org.id, unique_email("optout"), marketing_opt_out=True)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/login")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    log_in(page, admin)

    # re-subscribe the contact with the contact form
    page.goto(f"/crm/contacts/{contact.id}")
    page.get_by_label("Marketing Opt-Out").uncheck()
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state("load")
    # a user created and promoted with the Users page
    newcomer = unique_email("newcomer")
    page.goto("/settings/users")
    page.get_by_label("Email").fill(newcomer)
    page.get_by_label("Password").fill("p" * 12)
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("User created.")
    page.get_by_label(f"Role of {newcomer}").select_option("MANAGER")
    page.get_by_role("row", name=newcomer).get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status")).to_have_text("Role changed.")
    # a campaign with a hostile name, deleted over the API
    with httpx.Client(base_url=web.url) as api:
        headers = login(api, admin)
        made = api.post(
            "/api/marketing/campaigns",
            headers=headers,
            json={"name": HOSTILE_NAME, "subject": "Hi"},
        ).json()
        assert (
            api.delete(f"/api/marketing/campaigns/{made['id']}", headers=headers).status_code == 204
        )

    page.goto("/settings")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(rows(page).nth(0)).to_contain_text("campaign.deleted")
    expect(rows(page).nth(0)).to_contain_text(f"campaign {made['id']} {HOSTILE_NAME}")
    expected = [
        ("campaign.deleted", admin.email, f"campaign {made['id']}"),
        ("auth.login", admin.email, f"user {admin.email}"),  # the API's login
        ("user.role_changed", admin.email, f"user {newcomer}"),
        ("user.created", admin.email, f"user {newcomer}"),
        ("contact.resubscribed", admin.email, f"contact {contact.id} {contact.email}"),
        ("auth.login", admin.email, f"user {admin.email}"),  # the login form
        ("auth.login_failed", admin.email, f"user {admin.email}"),
    ]
    for n, (action, actor, target) in enumerate(expected):
        row = rows(page).nth(n)
        expect(row.locator("td").nth(2)).to_have_text(action)
        expect(row.locator("td").nth(1)).to_have_text(actor)
        expect(row.locator("td").nth(3)).to_contain_text(target)
    expect(rows(page).nth(2).locator("td").nth(4)).to_have_text("role: USER → MANAGER")
    expect(rows(page).nth(4).locator("td").nth(4)).to_have_text("marketingOptOut: True → False")
    expect(rows(page).nth(6).locator("td").nth(4)).to_contain_text("reason: invalid_credentials")
    assert "not the password" not in page.content()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("table img").count() == 0
    assert dialogs == []
    assert requests and all(url.startswith(web.url) for url in requests), requests


def test_the_log_is_paged_fifty_at_a_time(page, runtime):
    org = make_org(runtime)
    admin = make_user(runtime, org, "ADMIN")
    who = audit.system_actor(org.id, audit.CLI)
    with unit_of_work(runtime.sessions) as session:
        for n in range(60):
            audit.record(session, who, "user.created", target=f"user n{n:02d}@example.com")
    log_in(page, admin)  # the 62nd event (the admin's creation was the 1st)
    page.goto("/settings/audit")
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()
    expect(rows(page)).to_have_count(50)
    expect(rows(page).nth(0)).to_contain_text("auth.login")
    expect(rows(page).nth(1)).to_contain_text("user n59@example.com")
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(rows(page)).to_have_count(12)
    expect(rows(page).nth(11)).to_contain_text(f"user {admin.email}")
    expect(rows(page).nth(11)).to_contain_text("herald CLI")


def test_only_admins_see_the_audit_log(page, runtime):
    manager = make_user(runtime, make_org(runtime), "MANAGER")
    log_in(page, manager)
    page.goto("/settings")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    response = page.goto("/settings/audit")
    assert response is not None and response.status == 403
    assert "auth.login" not in page.content()
