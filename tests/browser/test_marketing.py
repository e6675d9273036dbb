"""The Marketing pages in a real browser: the campaign form, launching and watching it send,
the email log with Resend, Duplicate, the sandboxed preview, Send test, and a MANAGER's view."""

from __future__ import annotations

import dataclasses
import re
import uuid

import pytest
from playwright.sync_api import expect

from herald.db import unit_of_work
from herald.marketing.models import Campaign
from tests.browser.conftest import log_in
from tests.marketing.engine import add_contacts, configure_smtp, wait_until
from tests.marketing.engine import campaign as load_campaign
from tests.orgs.factories import make_org, make_user
from tests.smtp_server import reject, slow, smtp_server, start_smtp_server  # noqa: F401

SCRIPT_BODY = (
    "<script>window.parent.document.title='pwned';alert('pwned')</script>"
    "<p>Hi {{firstName|there}}</p>"
)

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)


def _org_with_contacts(runtime, server, emails, **fields):  # type: ignore[no-untyped-def]
    org = make_org(runtime)
    if server is not None:
        configure_smtp(runtime, org.id, server.port)
    add_contacts(runtime, org.id, emails, **fields)
    return org


def _emails(count: int, prefix: str = "r") -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{i}-{tag}@example.com" for i in range(count)]


def _draft(runtime, org_id, name="Spring news", html="<p>Hi {{firstName}}</p>"):  # type: ignore[no-untyped-def]
    with unit_of_work(runtime.sessions) as session:
        row = Campaign(
            org_id=org_id,
            name=name,
            subject="Hello {{firstName|there}}",
            html_body=html,
            text_body="",
            audience={"type": "ALL"},
        )
        session.add(row)
        session.flush()
        return row.id


def _fill_basics(page, name: str, subject: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Name", exact=False).first.fill(name)
    page.get_by_label(re.compile(r"^Subject")).fill(subject)


def test_create_edit_launch_and_watch_it_send_without_reloading(page, runtime, smtp_server):  # noqa: F811
    emails = _emails(3)
    org = _org_with_contacts(runtime, smtp_server, emails)
    add_contacts(runtime, org.id, _emails(1, "c"), status="CUSTOMER")
    smtp_server.script(emails[0], slow(2.5))  # keeps the campaign SENDING for a moment
    log_in(page, make_user(runtime, org, "ADMIN", mfa=True))

    page.goto("/marketing")
    page.get_by_role("link", name="+ New campaign").click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()
    _fill_basics(page, "Autumn launch", "Hello {{firstName|there}}")
    page.get_by_label("HTML body").fill("<p>Hi {{firstName}}</p>")
    count = page.locator("#audience-count [data-recipients]")
    expect(count).to_have_text("4")
    page.get_by_label("By status").check()
    page.get_by_label("CUSTOMER").check()
    expect(count).to_have_text("1")  # the live count, from our page endpoint
    page.get_by_label("All contacts").check()
    expect(count).to_have_text("4")
    page.get_by_role("button", name="Save draft").click()

    expect(page.get_by_role("heading", name="Autumn launch")).to_be_visible()
    expect(page.locator("#stats [data-field=status]")).to_have_text("DRAFT")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Name", exact=False).first).to_have_value("Autumn launch")
    page.get_by_label(re.compile(r"^Subject")).fill("Autumn is here, {{firstName|there}}")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status").filter(has_text="Changes saved")).to_be_visible()
    expect(page.get_by_text("Subject: Autumn is here")).to_be_visible()

    questions: list[str] = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.get_by_role("button", name="Launch campaign").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("SENDING")
    assert questions == ["Send to 4 recipients?"]
    page.evaluate("window.__sameDocument = true")

    expect(page.locator("[data-field=delivered]")).to_have_text("4", timeout=30_000)
    expect(page.locator("#stats [data-field=status]")).to_have_text("SENT")
    expect(page.locator("[data-field=recipients]")).to_have_text("4")
    assert page.evaluate("window.__sameDocument") is True  # polled, never reloaded
    assert len(smtp_server.wait_for_messages(4)) == 4
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)

    page.goto("/marketing")
    row = page.get_by_role("row").filter(has_text="Autumn launch")
    expect(row).to_contain_text("SENT")
    expect(row.get_by_role("cell").nth(3)).to_have_text("4")


def test_a_failed_send_is_in_the_email_log_and_resend_requeues_it(page, runtime, smtp_server):  # noqa: F811
    emails = _emails(3)
    org = _org_with_contacts(runtime, smtp_server, emails)
    once = dataclasses.replace(reject("550 5.1.1 No such user"), times=1)
    smtp_server.script(emails[1], once)
    campaign_id = _draft(runtime, org.id)
    log_in(page, make_user(runtime, org, "ADMIN"))

    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Launch campaign").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("SENT", timeout=30_000)
    expect(page.locator("[data-field=failed]")).to_have_text("1")

    page.get_by_role("link", name="Email log").click()
    expect(page.get_by_role("heading", name="Email log")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(3)
    failed = page.get_by_role("row").filter(has_text=emails[1])
    expect(failed).to_contain_text("FAILED")
    expect(failed).to_contain_text("550")
    expect(page.get_by_role("button", name=re.compile("^Resend"))).to_have_count(1)

    page.get_by_label("Status").select_option("FAILED")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("button", name=f"Resend to {emails[1]}").click()
    expect(page.get_by_text("The send is queued again.")).to_be_visible()

    wait_until(lambda: load_campaign(runtime, campaign_id).delivered == 3)
    page.goto(f"/marketing/campaigns/{campaign_id}/log")
    expect(page.get_by_role("row").filter(has_text=emails[1])).to_contain_text("DELIVERED")
    expect(page.get_by_role("button", name=re.compile("^Resend"))).to_have_count(0)

    csv = page.request.get(f"/marketing/campaigns/{campaign_id}/sends.csv")
    assert csv.ok
    lines = csv.text().splitlines()
    assert lines[0] == (
        "email,firstName,lastName,status,deliveredAt,openedAt,error,bounceType,bouncedAt,"
        "complainedAt,clickedAt,machine"
    )
    assert len(lines) == 4


def test_duplicate_creates_a_copy_as_a_new_draft_and_delete_removes_it(page, runtime):
    org = make_org(runtime)
    campaign_id = _draft(runtime, org.id, name="Winter sale")
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.get_by_role("button", name="Duplicate").click()
    expect(page.get_by_role("heading", name="Winter sale (copy)")).to_be_visible()
    expect(page.locator("#stats [data-field=status]")).to_have_text("DRAFT")
    assert str(campaign_id) not in page.url

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/marketing\?notice=deleted$"))
    expect(page.get_by_role("status").filter(has_text="Campaign deleted.")).to_be_visible()
    expect(page.get_by_role("link", name="Winter sale (copy)")).to_have_count(0)
    expect(page.get_by_role("link", name="Winter sale", exact=True)).to_be_visible()


def test_script_in_the_campaign_body_never_runs_in_the_preview(page, runtime):
    org = _org_with_contacts(runtime, None, _emails(1), first_name="Maya")
    campaign_id = _draft(runtime, org.id, name="Sneaky", html=SCRIPT_BODY)
    log_in(page, make_user(runtime, org, "ADMIN"))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"/marketing/campaigns/{campaign_id}")
    preview = page.frame_locator("iframe.preview")
    expect(preview.locator("p").first).to_have_text("Hi Maya")  # rendered for a real contact
    page.wait_for_timeout(500)
    assert page.title() == "Sneaky · Herald"
    assert dialogs == []

    frame = page.locator("iframe.preview")
    assert frame.get_attribute("sandbox") == ""
    response = page.request.get(f"/marketing/campaigns/{campaign_id}/preview")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "sandbox" in response.headers["content-security-policy"]


def test_send_test_delivers_the_sample_message_and_shows_the_smtp_answer(
    page,
    runtime,
    smtp_server,  # noqa: F811
):
    org = _org_with_contacts(runtime, smtp_server, _emails(1), first_name="Noor")
    campaign_id = _draft(runtime, org.id)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.get_by_label("Send a test to").fill("me@example.com")
    page.get_by_role("button", name="Send test").click()
    answer = page.get_by_role("status").filter(has_text="The SMTP server answered: 250")
    expect(answer).to_be_visible()
    received = smtp_server.wait_for_messages(1)[0]
    assert received.rcpt_tos == ["me@example.com"]
    assert received.message["Subject"] == "[Test] Hello Noor"


def test_a_missing_subject_is_shown_inline_with_the_values_kept(page, runtime):
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/marketing/campaigns/new")
    _fill_basics(page, "No subject yet", "")
    page.get_by_label("HTML body").fill("<p>Kept</p>")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save draft").click()
    assert answer.value.status == 422
    expect(page.locator("#subject-error")).to_contain_text("subject is required")
    expect(page.get_by_label(re.compile(r"^Subject"))).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=False).first).to_have_value("No subject yet")
    expect(page.get_by_label("HTML body")).to_have_value("<p>Kept</p>")


def test_a_manager_sees_the_pages_with_every_write_button_disabled(page, runtime):
    org = make_org(runtime)
    _draft(runtime, org.id, name="Read only")
    log_in(page, make_user(runtime, org, "MANAGER"))
    page.goto("/marketing")
    expect(page.get_by_role("link", name="Read only")).to_be_visible()
    expect(page.get_by_role("button", name="+ New campaign")).to_be_disabled()
    expect(page.get_by_text("Only an ADMIN can create campaigns")).to_be_visible()

    page.get_by_role("link", name="Read only").click()
    for name in ("Launch campaign", "Edit", "Duplicate", "Delete", "Send test"):
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    expect(page.get_by_role("link", name="Email log")).to_be_visible()
    page.goto("/marketing/campaigns/new")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_pages_fit_a_phone_screen(page, runtime):
    org = make_org(runtime)
    campaign_id = _draft(runtime, org.id, name="Small screens")
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.set_viewport_size({"width": 390, "height": 844})
    paths = ("", f"/campaigns/{campaign_id}", f"/campaigns/{campaign_id}/log", "/campaigns/new")
    for path in ("/marketing" + p for p in paths):
        page.goto(path)
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{path} scrolls sideways at 390 px"


def test_a_launch_without_smtp_fails_with_the_reason_and_locks_editing(page, runtime):
    org = _org_with_contacts(runtime, None, _emails(2))
    campaign_id = _draft(runtime, org.id, name="No SMTP")
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Launch campaign").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("FAILED")
    expect(page.get_by_role("alert")).to_contain_text("SMTP is not configured")
    expect(page.get_by_role("button", name="Launch campaign")).to_have_count(0)
    page.goto(f"/marketing/campaigns/{campaign_id}/edit")
    expect(page).to_have_url(re.compile(rf"/marketing/campaigns/{campaign_id}\?notice=not_draft"))
    expect(page.get_by_role("alert").filter(has_text="Only a DRAFT campaign")).to_be_visible()


def test_a_refused_test_message_shows_the_smtp_error(page, runtime, smtp_server):  # noqa: F811
    org = _org_with_contacts(runtime, smtp_server, _emails(1))
    campaign_id = _draft(runtime, org.id)
    smtp_server.script("nobody@example.com", reject("550 5.1.1 No such user"))
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.get_by_label("Send a test to").fill("nobody@example.com")
    page.get_by_role("button", name="Send test").click()
    error = page.get_by_role("alert").filter(has_text="The test was not sent")
    expect(error).to_contain_text("550 5.1.1 No such user")
    expect(page.get_by_label("Send a test to")).to_have_value("nobody@example.com")
