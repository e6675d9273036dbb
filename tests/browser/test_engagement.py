"""Engagement in a real browser: the form's tracking checkboxes, a sent campaign's human and
machine figures, its links table and charts, the machine marker in the email log, and
"Duplicate to non-openers" showing its recipient count before anything is saved."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in
from tests.conftest import LiveServer
from tests.marketing.engine import arrange, mark_delivered, sends, wait_until
from tests.marketing.engine import campaign as load_campaign
from tests.marketing.test_clicks import BROWSER, click_rows
from tests.orgs.factories import make_org, make_user
from tests.smtp_server import smtp_server, start_smtp_server  # noqa: F401

LINK = "https://shop.example/spring?who={{email}}"
BODY = f'<p>Hi {{{{firstName}}}}, <a href="{LINK}">the spring sale</a></p>'


def test_tracking_is_on_by_default_and_each_kind_can_be_turned_off(page: Page, runtime) -> None:
    org = make_org(runtime)
    log_in(page, make_user(runtime, org, "ADMIN"))
    page.goto("/marketing/campaigns/new")
    opens, clicks = page.get_by_label("Track opens"), page.get_by_label("Track clicks")
    expect(opens).to_be_checked()
    expect(clicks).to_be_checked()
    page.get_by_label("Name", exact=False).first.fill("Plain links")
    page.get_by_label(re.compile(r"^Subject")).fill("Hello")
    page.get_by_label("HTML body").fill(BODY)
    clicks.uncheck()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name="Plain links")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("Opens only (links as written)")
    expect(page.get_by_role("heading", name="Links", exact=True)).to_have_count(0)

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Track opens")).to_be_checked()
    expect(page.get_by_label("Track clicks")).not_to_be_checked()
    page.get_by_label("Track opens").uncheck()
    page.get_by_label("Track clicks").check()
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("dl.facts")).to_contain_text("Clicks only (no pixel)")
    # a DRAFT's links table lists what its body will track, at zero
    table = page.get_by_role("table", name="Links")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text(LINK)


def test_a_sent_campaign_shows_people_and_machines_apart_and_follows_up(
    page: Page,
    runtime,
    web: LiveServer,
    smtp_server,  # noqa: F811
) -> None:
    arranged = arrange(runtime, smtp_server, 4, html_body=BODY)
    mark_delivered(runtime, arranged.campaign_id, seconds_ago=3600)
    person, scanner, apple, _nobody = sends(runtime, arranged.campaign_id)
    with httpx.Client(base_url=web.url, headers=BROWSER) as http:
        assert http.get(f"/c/{person.token}/1").status_code == 302
        assert http.head(f"/c/{scanner.token}/1").status_code == 302
        assert http.head(f"/t/{apple.token}.gif").status_code == 200
    wait_until(lambda: load_campaign(runtime, arranged.campaign_id).opens == 3, timeout=15)
    assert click_rows(runtime, arranged.campaign_id) == 2
    log_in(page, make_user(runtime, arranged.org_id, "ADMIN"))

    page.goto(f"/marketing/campaigns/{arranged.campaign_id}")
    expected = {
        "opens": "3", "humanOpens": "1", "machineOpens": "2", "humanOpenRate": "25.0%",
        "clicks": "1", "machineClicks": "1", "clickRate": "25.0%", "unsubscribes": "0",
    }  # fmt: skip
    for field, value in expected.items():
        expect(page.locator(f"[data-field={field}]")).to_have_text(value)
    table = page.get_by_role("table", name="Links")
    row = table.get_by_role("row").filter(has_text=LINK)
    expect(row.get_by_role("cell")).to_have_text(["1", LINK, "1", "1", "1"])
    for chart in ("opens", "clicks"):
        figure = page.locator(f"[data-chart={chart}]")
        expect(figure.locator("rect.human")).not_to_have_count(0)
        expect(figure.locator("figcaption")).to_contain_text("1 human")

    page.get_by_role("link", name="Email log").click()
    scanned = page.get_by_role("row").filter(has_text=scanner.email)
    expect(scanned).to_contain_text("Machine")
    expect(scanned).to_contain_text("a HEAD request")
    expect(page.get_by_role("row").filter(has_text=person.email)).to_contain_text("Human")
    csv = page.request.get(f"/marketing/campaigns/{arranged.campaign_id}/sends.csv")
    assert csv.text().splitlines()[0].endswith(",clickedAt,machine")

    # the non-openers: the scanner's and Apple's (machine opens only) and the one untouched
    page.goto(f"/marketing/campaigns/{arranged.campaign_id}")
    expect(page.locator("#count-NOT_OPENED")).to_have_text("3 recipients")
    expect(page.locator("#count-NOT_CLICKED")).to_have_text("3 recipients")
    questions: list[str] = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.get_by_role("button", name="Duplicate to non-openers").click()
    expect(page.get_by_role("status").filter(has_text="did not open")).to_be_visible()
    assert questions and "3 contacts" in questions[0]
    expect(page.locator("#stats [data-field=status]")).to_have_text("DRAFT")
    expect(page.locator("dl.facts")).to_contain_text("and did not open it")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label(re.compile("and did not open it"))).to_be_checked()
    expect(page.locator("#audience-count [data-recipients]")).to_have_text("3")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("dl.facts")).to_contain_text("and did not open it")  # kept on edit
