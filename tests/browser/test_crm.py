"""The CRM pages in a real browser: list, search, filter, the contact form, CSV import, roles."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect
from sqlalchemy import select

from herald.crm.models import Contact
from herald.runtime import Runtime
from tests.browser.conftest import log_in
from tests.crm.factories import make_contact, unique_email
from tests.orgs.factories import make_org, make_user


def _contact(runtime: Runtime, org_id: uuid.UUID, email: str) -> Contact:
    with runtime.sessions() as session:
        found = session.scalars(
            select(Contact).where(Contact.org_id == org_id, Contact.email == email)
        ).one()
        session.expunge(found)
        return found


def test_the_list_searches_and_filters_by_status(page, runtime):
    org = make_org(runtime)
    make_contact(runtime, org.id, unique_email("ada"), first_name="Ada", status="LEAD")
    make_contact(
        runtime,
        org.id,
        unique_email("grace"),
        first_name="Grace",
        status="CUSTOMER",
        company_name="Navy",
        marketing_opt_out=True,
    )
    make_contact(runtime, org.id, unique_email("alan"), first_name="Alan", status="CUSTOMER")
    log_in(page, make_user(runtime, org, "MANAGER"))
    page.goto("/crm/contacts")

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(page.get_by_text("3 contacts")).to_be_visible()

    page.get_by_label("Search").fill("grace")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Navy")
    expect(rows.first).to_contain_text("CUSTOMER")
    expect(rows.first.locator("td").nth(4)).to_have_text("Yes")

    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option("CUSTOMER")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=CUSTOMER"))
    expect(rows).to_have_count(2)
    expect(page.locator("tbody")).not_to_contain_text("Ada")


def test_create_then_edit_a_contact_and_opt_it_out(page, runtime):
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    email = unique_email("new")
    page.goto("/crm/contacts")
    page.get_by_role("link", name="New contact").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("First name").fill("Katherine")
    page.get_by_label("Last name").fill("Johnson")
    page.get_by_label("Company").fill("NASA")
    page.get_by_label("Status").select_option("PROSPECT")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Contact created.")
    created = _contact(runtime, org.id, email)
    assert (created.first_name, created.company_name, created.status) == (
        "Katherine",
        "NASA",
        "PROSPECT",
    )
    assert created.marketing_opt_out is False

    page.get_by_label("Company").fill("NASA Langley")
    page.get_by_label("Marketing Opt-Out").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Contact saved.")
    expect(page.get_by_label("Marketing Opt-Out")).to_be_checked()
    saved = _contact(runtime, org.id, email)
    assert saved.marketing_opt_out is True
    assert saved.company_name == "NASA Langley"

    page.goto("/crm/contacts")
    row = page.locator("tbody tr", has_text=email)
    expect(row.locator("td").nth(4)).to_have_text("Yes")


def test_a_bad_email_is_shown_next_to_the_field_with_the_entered_values(page, runtime):
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "MANAGER"))
    page.goto("/crm/contacts/new")
    page.get_by_label("Email").fill("not-an-address")
    page.get_by_label("First name").fill("Typo")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#email-error")).to_contain_text("not a valid address")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Email")).to_have_value("not-an-address")
    expect(page.get_by_label("First name")).to_have_value("Typo")
    with runtime.sessions() as session:
        assert session.scalars(select(Contact).where(Contact.org_id == org.id)).first() is None


def test_delete_asks_first_then_removes_the_contact(page, runtime):
    org = make_org(runtime)
    email = unique_email("gone")
    contact = make_contact(runtime, org.id, email)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/crm/contacts/{contact.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete contact").click()
    expect(page.get_by_role("status")).to_have_text("Contact deleted.")
    expect(page.locator("main")).not_to_contain_text(email)


def test_import_a_csv_through_the_page_shows_the_summary_and_line_errors(page, runtime, tmp_path):
    org = make_org(runtime)
    existing = unique_email("known")
    make_contact(runtime, org.id, existing, first_name="Old")
    log_in(page, make_user(runtime, org, "MANAGER"))
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "email,firstName,lastName,status\n"
        f"{unique_email('one')},One,Person,LEAD\n"
        "broken-address,Bad,Row,LEAD\n"
        f"{existing},New,Name,CUSTOMER\n",
        encoding="utf-8",
    )
    page.goto("/crm/contacts")
    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import").click()
    summary = page.get_by_role("status")
    expect(summary).to_contain_text("1 created")
    expect(summary).to_contain_text("1 updated")
    expect(summary).to_contain_text("1 skipped")
    error_row = page.locator("tbody tr")
    expect(error_row).to_have_count(1)
    expect(error_row.locator("td").first).to_have_text("3")
    expect(error_row).to_contain_text("email")
    assert _contact(runtime, org.id, existing).first_name == "New"


def test_a_user_reads_contacts_but_the_write_buttons_are_disabled(page, runtime):
    org = make_org(runtime)
    make_contact(runtime, org.id, unique_email("read"), first_name="Readable")
    log_in(page, make_user(runtime, org, "USER"))
    page.goto("/crm/contacts")
    expect(page.locator("tbody")).to_contain_text("Readable")
    new_button = page.get_by_role("button", name="New contact")
    expect(new_button).to_be_disabled()
    expect(page.get_by_role("button", name="Import CSV")).to_be_disabled()
    expect(page.locator("#read-only-reason")).to_contain_text("ADMIN or a MANAGER")
    expect(page.get_by_role("link", name="New contact")).to_have_count(0)

    page.get_by_role("link", name="Readable").click()
    expect(page.get_by_label("First name")).to_have_value("Readable")
    expect(page.get_by_label("First name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    expect(page.get_by_role("button", name="Delete contact")).to_be_disabled()

    page.goto("/crm/contacts/new")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_pages_of_fifty_keep_the_filter(page, runtime):
    org = make_org(runtime)
    for number in range(52):
        make_contact(runtime, org.id, unique_email(f"p{number:02d}"), status="PROSPECT")
    make_contact(runtime, org.id, unique_email("other"), first_name="Elsewhere", status="LEAD")
    log_in(page, make_user(runtime, org, "USER"))
    page.goto("/crm/contacts?status=PROSPECT")
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text("Page 1 of 2")
    expect(page.locator("tbody tr")).to_have_count(50)
    pager.get_by_role("link", name="Next").click()
    expect(pager).to_contain_text("Page 2 of 2")
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_label("Status")).to_have_value("PROSPECT")
    expect(page.locator("tbody")).not_to_contain_text("Elsewhere")
