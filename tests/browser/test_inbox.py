"""The newcomer's path of ``herald dev`` in a real browser: log in as the demo admin, launch
the demo campaign, watch it arrive in the Inbox, open a message (the pixel counts an open),
and unsubscribe from the link inside it."""

from __future__ import annotations

import dataclasses
import re
import smtplib
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect
from sqlalchemy import select

from herald.audit.service import CLI, system_actor
from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.dev.catcher import MailCatcher
from herald.dev.demo import ensure_demo
from herald.dev.mailbox import Mailbox
from herald.marketing.launch import launch_campaign
from herald.marketing.models import Campaign
from herald.marketing.schemas import AudienceIn, CampaignIn
from herald.marketing.service import create_campaign, duplicate_campaign
from herald.orgs.models import User
from herald.runtime import Runtime
from tests.browser.conftest import log_in
from tests.conftest import LiveServer, free_port, make_settings
from tests.marketing.engine import campaign as load_campaign
from tests.marketing.engine import mark_delivered, wait_for_status
from tests.orgs.factories import SeededUser

WELCOME = "Welcome to Herald"
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@dataclasses.dataclass(frozen=True)
class Trial:
    """What ``herald dev`` gives a newcomer: the app, its catcher's mailbox, the demo login."""

    server: LiveServer
    runtime: Runtime
    mailbox: Mailbox
    smtp_port: int
    admin: SeededUser
    campaign_name: str


def _draft_welcome(runtime: Runtime, org_id: uuid.UUID) -> str:
    """The demo's welcome campaign, or (when an earlier run against this database launched
    it) a fresh DRAFT copy of it; returns the name to click."""
    with unit_of_work(runtime.sessions) as session:
        welcome = session.scalars(
            select(Campaign).where(Campaign.org_id == org_id, Campaign.name == WELCOME)
        ).one()
        if welcome.status == "DRAFT":
            return WELCOME
        return duplicate_campaign(session, org_id, str(welcome.id)).name


@pytest.fixture(scope="module")
def trial(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    dev_dir: Path = tmp_path_factory.mktemp("dev")
    port, smtp_port = free_port(), free_port()
    settings = make_settings(
        runtime.settings.database_url,
        env="dev",
        dev_dir=dev_dir,
        base_url=f"http://127.0.0.1:{port}",
        lease_seconds=5,
        retry_base_seconds=0.5,
        retry_window_seconds=5,
        open_flush_seconds=0.3,
    )
    dev_runtime = Runtime(settings=settings, engine=runtime.engine, sessions=runtime.sessions)
    mailbox = Mailbox(settings.mailbox_dir)
    catcher = MailCatcher(mailbox, port=smtp_port)
    catcher.start()
    try:
        with unit_of_work(dev_runtime.sessions) as session:
            login = ensure_demo(session, settings, dev_dir, smtp_port)
            admin_id = session.scalars(select(User.id).where(User.email == login.admin_email)).one()
        admin = SeededUser(admin_id, login.org_id, login.admin_email, "ADMIN", login.password)
        name = _draft_welcome(dev_runtime, login.org_id)
        server = LiveServer(dev_runtime, port=port, embedded_worker=True).start()
        try:
            yield Trial(server, dev_runtime, mailbox, smtp_port, admin, name)
        finally:
            server.stop()
    finally:
        catcher.stop()


@pytest.fixture(scope="module")
def web(trial: Trial) -> LiveServer:
    """This module's pages are those of the dev-mode server (the conftest's ``page`` uses it)."""
    return trial.server


def _fits(page: Page, where: str, in_view: Locator | None = None) -> None:
    """No sideways scrolling of the page at desktop and phone widths (wide tables scroll in
    their own box), with ``in_view`` reachable without scrolling sideways."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate(FITS), f"{where} scrolls sideways at {width} px"
        if in_view is not None:
            expect(in_view).to_be_in_viewport()
    page.set_viewport_size({"width": 1280, "height": 900})


def _contact(runtime: Runtime, org_id: uuid.UUID, email: str | None) -> Contact:
    with unit_of_work(runtime.sessions, write=False) as session:
        return session.scalars(
            select(Contact).where(Contact.org_id == org_id, Contact.email == email)
        ).one()


def _opens_at_least_one(page: Page, deadline_seconds: float = 15) -> None:
    """Opens are flushed in batches: reload the campaign page until its count moves."""
    opens = page.locator("[data-field=opens]")
    deadline = time.monotonic() + deadline_seconds
    while int(opens.inner_text()) < 1:
        assert time.monotonic() < deadline, "showing the HTML never counted an open"
        page.wait_for_timeout(300)
        page.reload()


def test_launch_the_demo_campaign_watch_it_arrive_open_it_and_unsubscribe(
    page: Page, trial: Trial
) -> None:
    trial.mailbox.clear()
    log_in(page, trial.admin)

    page.get_by_role("link", name="Marketing", exact=True).click()
    row = page.get_by_role("row").filter(has_text=trial.campaign_name).filter(has_text="DRAFT")
    row.get_by_role("link", name=trial.campaign_name, exact=True).click()
    expect(page.get_by_role("heading", name=trial.campaign_name)).to_be_visible()
    campaign_url = page.url
    questions: list[str] = []

    def confirm(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.get_by_role("button", name="Launch campaign").click()
    status = page.locator("#stats [data-field=status]")
    expect(status).to_have_text("SENT", timeout=30_000)
    recipients = int(page.locator("[data-field=recipients]").inner_text())
    assert questions == [f"Send to {recipients} recipients?"]
    assert recipients > 100  # the demo's contacts with an address, minus the opted out
    expect(page.locator("[data-field=delivered]")).to_have_text(str(recipients))

    page.get_by_role("link", name="Inbox", exact=True).click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.get_by_text(f"{recipients} message(s), newest first")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(min(50, recipients))
    expect(page.get_by_text(re.compile(r"Page 1 of \d+"))).to_be_visible()
    newest = page.locator("tbody tr").first.get_by_role("link")
    _fits(page, "the inbox", in_view=newest)

    newest.click()
    expect(page.get_by_role("link", name="← Inbox")).to_be_visible()
    to = page.locator("dl.facts dd").nth(1).inner_text()
    contact = _contact(trial.runtime, trial.admin.org_id, parseaddr(to)[1])
    greeting = f"Hello {contact.first_name or 'there'}!"
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Welcome, {contact.first_name or 'friend'}!"
    )
    message = page.frame_locator("iframe.preview")
    expect(message.get_by_role("heading", name=greeting)).to_be_visible()
    _fits(page, "a message")
    message_url = page.url

    page.get_by_role("link", name="Text", exact=True).click()
    expect(page.locator("pre.message-text")).to_contain_text(greeting)
    expect(page.locator("pre.message-text")).to_contain_text(f"made for {contact.email}")
    expect(page.locator("pre.message-text")).to_contain_text("Unsubscribe: http://127.0.0.1:")
    _fits(page, "a message's text")
    page.get_by_role("link", name="Headers", exact=True).click()
    unsubscribe_header = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="List-Unsubscribe", exact=True)
    )
    expect(unsubscribe_header).to_contain_text(f"<{trial.server.url}/u/")
    _fits(page, "a message's headers")

    page.goto(campaign_url)  # the pixel loaded with the HTML view above
    _opens_at_least_one(page)

    page.goto(message_url)
    unsubscribe = message.get_by_role("link", name="Unsubscribe")
    with page.context.expect_page() as opened:
        unsubscribe.click()
    tab = opened.value
    expect(tab.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert tab.url.startswith(f"{trial.server.url}/u/")
    assert page.url == message_url  # the Inbox stays where it was
    assert _contact(trial.runtime, trial.admin.org_id, contact.email).marketing_opt_out


def test_delete_all_empties_the_inbox(page: Page, trial: Trial) -> None:
    for n in range(3):
        note = EmailMessage()
        note["From"], note["To"] = "app@example.com", f"reader{n}@example.com"
        note["Subject"] = f"Note {n}"
        note.set_content("Kept by the mail catcher.")
        with smtplib.SMTP("127.0.0.1", trial.smtp_port, timeout=10) as smtp:
            smtp.send_message(note)
    log_in(page, trial.admin)

    page.get_by_role("link", name="Inbox", exact=True).click()
    expect(page.get_by_role("link", name="Note 2")).to_be_visible()
    page.get_by_role("button", name="Delete all").click()
    expect(page).to_have_url(re.compile(r"/dev/inbox$"))
    expect(page.locator("tbody tr")).to_have_count(0)
    expect(page.get_by_text("0 message(s)")).to_be_visible()
    expect(page.get_by_text("No mail yet.")).to_be_visible()
    expect(page.get_by_role("button", name="Delete all")).to_have_count(0)
    assert trial.mailbox.ids() == []


# --- a tracked link in a received message -----------------------------------------------------

# A person's browser: Playwright's headless Chromium says "HeadlessChrome", which Herald
# rightly counts as a machine (herald.marketing.classify), so the person here says Chrome.
PERSON_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class _Landing(BaseHTTPRequestHandler):
    """The site a campaign's link points to: it notes each path asked for."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"<!doctype html><title>Landing</title><h1>You landed</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def landing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Landing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _launch_with_link(trial: Trial, link: str, subject: str) -> uuid.UUID:
    """A campaign to the demo's customers with one tracked link, launched and SENT, its
    messages delivered an hour ago (so the click is not one "seconds after delivery")."""
    org_id = trial.admin.org_id
    with unit_of_work(trial.runtime.sessions) as session:
        draft = create_campaign(
            session,
            org_id,
            CampaignIn(
                name=subject,
                subject=subject,
                html_body=f'<p>Hi {{{{firstName|there}}}}, <a href="{link}">see the offer</a></p>',
                audience=AudienceIn(type="STATUS", statuses=["CUSTOMER"]),
            ),
        )
        launch_campaign(session, org_id, draft.id, actor=system_actor(org_id, CLI))
        campaign_id = draft.id
    wait_for_status(trial.runtime, campaign_id, "SENT", timeout=60)
    mark_delivered(trial.runtime, campaign_id, seconds_ago=3600)
    return campaign_id


def test_a_link_clicked_in_a_received_message_lands_on_its_target_and_counts(
    browser, trial: Trial, landing: str
) -> None:
    subject = f"Offer {uuid.uuid4().hex[:6]}"
    campaign_id = _launch_with_link(trial, f"{landing}/offer?who={{{{email}}}}", subject)
    context = browser.new_context(base_url=trial.server.url, user_agent=PERSON_AGENT)  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, trial.admin)
        page.goto("/dev/inbox")
        page.get_by_role("link", name=subject).first.click()
        to = parseaddr(page.locator("dl.facts dd").nth(1).inner_text())[1]
        message = page.frame_locator("iframe.preview")
        offer = message.get_by_role("link", name="see the offer")
        assert "/c/" in (offer.get_attribute("href") or "")  # tracked, not the target itself
        with page.context.expect_page() as opened:
            offer.click()
        tab = opened.value
        expect(tab.get_by_role("heading", name="You landed")).to_be_visible()
        assert tab.url == f"{landing}/offer?who={quote(to, safe='')}"
        assert f"/offer?who={quote(to, safe='')}" in _Landing.seen

        page.goto(f"/marketing/campaigns/{campaign_id}")
        clicks = page.locator("[data-field=clicks]")
        deadline = time.monotonic() + 15
        while clicks.inner_text() != "1":
            assert time.monotonic() < deadline, "the click was never counted"
            page.wait_for_timeout(300)
            page.reload()
        expect(page.locator("[data-field=machineClicks]")).to_have_text("0")
        expect(page.locator("[data-field=humanOpens]")).to_have_text("1")  # pixel and click
        row = page.get_by_role("row").filter(has_text=f"{landing}/offer")
        expect(row.get_by_role("cell").nth(2)).to_have_text("1")  # clicks
        expect(row.get_by_role("cell").nth(3)).to_have_text("1")  # unique
        expect(row.get_by_role("cell").nth(4)).to_have_text("0")  # machine
        assert load_campaign(trial.runtime, campaign_id).clicks == 1
    finally:
        context.close()
