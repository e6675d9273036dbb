"""Sending control in a real browser: Schedule in the viewer's time zone (stored in UTC),
Unschedule, Pause, Resume and Cancel (its confirmation counting what will not be sent),
buttons that follow the status without a reload, an auto-pause's reason, a MANAGER's
disabled buttons, and the relay limits in Email configuration."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.mailconfig import service as mailconfig
from herald.marketing.control import pause_campaign
from herald.marketing.models import Campaign
from tests.browser.conftest import log_in
from tests.marketing.engine import add_contacts, configure_smtp
from tests.marketing.engine import campaign as load_campaign
from tests.orgs.factories import make_org, make_user
from tests.smtp_server import slow, smtp_server, start_smtp_server  # noqa: F401

ZONE = "America/New_York"


def _draft(runtime, org_id, name: str = "Winter news") -> uuid.UUID:  # type: ignore[no-untyped-def]
    with unit_of_work(runtime.sessions) as session:
        row = Campaign(
            org_id=org_id,
            name=name,
            subject="Hello {{firstName|there}}",
            html_body="<p>Hi {{firstName}}</p>",
            text_body="",
            audience={"type": "ALL"},
        )
        session.add(row)
        session.flush()
        return row.id


def _launch_slowly(page, runtime, server):  # type: ignore[no-untyped-def]
    """An ADMIN launches, on its page, a campaign to 60 contacts whose relay takes 0.4 s a
    message (the page's worker sends about 10 a second); (org, campaign id)."""
    org = make_org(runtime)
    configure_smtp(runtime, org.id, server.port)
    emails = [f"p{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(60)]
    add_contacts(runtime, org.id, emails)
    for email in emails:
        server.script(email, slow(0.4))
    campaign_id = _draft(runtime, org.id, name="Big news")
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Launch campaign").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("SENDING")
    return org, campaign_id


@pytest.fixture
def new_york(browser, web):  # type: ignore[no-untyped-def]
    """A page in a browser whose viewer lives in New York."""
    context = browser.new_context(
        base_url=web.url, timezone_id=ZONE, locale="en-US", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_schedule_takes_the_viewers_time_zone_and_unschedule_undoes_it(
    new_york,
    runtime,
    smtp_server,  # noqa: F811
):
    page = new_york
    org = make_org(runtime)
    configure_smtp(runtime, org.id, smtp_server.port)
    campaign_id = _draft(runtime, org.id)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    expect(page.locator("#schedule-zone")).to_contain_text(ZONE)

    local = (dt.datetime.now(ZoneInfo(ZONE)) + dt.timedelta(days=2)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    page.get_by_label("Send it at").fill(local.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Schedule").click()

    expect(page.get_by_role("status").filter(has_text="Campaign scheduled")).to_be_visible()
    expect(page.locator("#stats [data-field=status]")).to_have_text("SCHEDULED")
    stored = load_campaign(runtime, campaign_id).scheduled_at
    assert stored == local.astimezone(dt.UTC)  # 14:30 or 13:30 UTC, as daylight saving has it
    shown = page.get_by_role("status").filter(has_text=re.compile("^Scheduled: it will be sent"))
    expect(shown).to_contain_text("9:30 AM")  # the viewer's time, not UTC's
    expect(page.get_by_role("button", name="Launch campaign")).to_have_count(0)

    page.get_by_role("button", name="Unschedule").click()
    expect(page.get_by_role("status").filter(has_text="a draft again")).to_be_visible()
    expect(page.locator("#stats [data-field=status]")).to_have_text("DRAFT")
    assert load_campaign(runtime, campaign_id).scheduled_at is None


def test_a_time_in_the_past_is_refused_on_the_page(page, runtime, smtp_server):  # noqa: F811
    org = make_org(runtime)
    configure_smtp(runtime, org.id, smtp_server.port)
    campaign_id = _draft(runtime, org.id)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    page.get_by_label("Send it at").fill("2020-01-01T09:00")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Schedule").click()
    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_contain_text("must be in the future")
    expect(page.get_by_label("Send it at")).to_have_value("2020-01-01T09:00")
    assert load_campaign(runtime, campaign_id).status == "DRAFT"


def test_pause_resume_and_cancel_while_it_sends(page, runtime, smtp_server):  # noqa: F811
    _org, campaign_id = _launch_slowly(page, runtime, smtp_server)

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("PAUSED")
    paused = page.get_by_role("status").filter(has_text="until it is resumed")
    expect(paused).to_contain_text("Paused since")
    expect(paused).to_contain_text("Paused by")
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("SENDING")

    questions: list[str] = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.get_by_role("button", name="Cancel campaign").click()
    expect(page.locator("#stats [data-field=status]")).to_have_text("CANCELLED")
    asked = re.search(r"(\d+) message\(s\) not yet sent will never be sent", questions[0])
    assert asked and int(asked.group(1)) > 0, questions
    row = load_campaign(runtime, campaign_id)
    expect(
        page.get_by_role("status").filter(has_text="not sent and never will be")
    ).to_contain_text(str(row.cancelled))
    assert row.cancelled >= int(asked.group(1)) - 50  # the count moved on as it sent
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    expect(page.get_by_role("button", name="Duplicate")).to_be_enabled()


def test_the_buttons_follow_a_pause_made_elsewhere_without_a_reload(page, runtime, smtp_server):  # noqa: F811
    org, campaign_id = _launch_slowly(page, runtime, smtp_server)
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    with unit_of_work(runtime.sessions) as session:  # as the API or the CLI would
        pause_campaign(session, org.id, str(campaign_id), actor=system_actor(org.id, CLI))
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=10_000)
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    paused = page.get_by_role("status").filter(has_text="until it is resumed")
    expect(paused).to_contain_text("Paused by herald CLI")
    assert page.evaluate("window.__sameDocument") is True


def test_an_auto_pause_shows_its_reason_and_a_manager_sees_the_buttons_disabled(page, runtime):
    org = make_org(runtime)
    campaign_id = _draft(runtime, org.id)
    reason = "The SMTP relay refused Herald's login (535 5.7.8 Authentication failed)."
    with unit_of_work(runtime.sessions) as session:
        row = session.get(Campaign, campaign_id)
        assert row is not None
        row.status, row.pause_reason, row.recipients = "PAUSED", reason, 10
    log_in(page, make_user(runtime, org, "MANAGER"))
    page.goto(f"/marketing/campaigns/{campaign_id}")
    paused = page.get_by_role("status").filter(has_text="until it is resumed")
    expect(paused).to_contain_text("535 5.7.8")
    for name in ("Resume", "Cancel campaign"):
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    expect(page.locator("#why-locked")).to_have_text("Only an ADMIN can change campaigns.")


def test_the_relay_limits_in_email_configuration(page, runtime, smtp_server):  # noqa: F811
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/settings/email")
    expect(page.get_by_label("Connections at once")).to_have_value("10")
    page.get_by_label("Host", exact=True).fill(smtp_server.host)
    page.get_by_label("Port", exact=True).fill(str(smtp_server.port))
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_label("Default from email").fill("news@example.com")
    page.get_by_label("Messages per second").fill("14")
    page.get_by_label("Messages per hour").fill("2000")
    page.get_by_label("Connections at once").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#maxConnections-error")).to_be_visible()
    expect(page.get_by_label("Messages per second")).to_have_value("14")

    page.get_by_label("Connections at once").fill("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")
    expect(page.get_by_label("Messages per hour")).to_have_value("2000")
    with runtime.sessions() as session:
        row = mailconfig.get_config(session, org.id)
        assert row is not None
        assert (row.max_per_second, row.max_per_hour, row.max_connections) == (14, 2000, 5)

    page.get_by_label("Messages per hour").fill("")  # empty: no limit
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Email configuration saved.")
    with runtime.sessions() as session:
        row = mailconfig.get_config(session, org.id)
        assert row is not None and row.max_per_hour is None
