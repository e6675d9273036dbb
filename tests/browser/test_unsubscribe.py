"""Unsubscribing from a received message, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from herald.crm.models import Contact
from herald.db import unit_of_work
from tests.marketing.engine import arrange, campaign, wait_until
from tests.smtp_server import smtp_server, start_smtp_server  # noqa: F401


def opted_out(runtime, email: str) -> bool:
    with unit_of_work(runtime.sessions, write=False) as session:
        return bool(session.scalar(select(Contact.marketing_opt_out).where(Contact.email == email)))


def test_the_link_in_a_received_message_unsubscribes_after_the_page_posts_itself(
    page,
    web,
    runtime,
    smtp_server,  # noqa: F811
):
    arranged = arrange(web.server.config.app.state.runtime, smtp_server, 2)
    wait_until(lambda: campaign(runtime, arranged.campaign_id).status == "SENT", timeout=60)
    message = next(m for m in smtp_server.messages if m.rcpt_tos == [arranged.emails[0]])
    html = message.message.get_body(("html",)).get_content()
    link = re.search(r"href=['\"]([^'\"]+/u/[0-9a-f]{64})", html).group(1)
    assert link.startswith(web.url)  # the base URL of this server

    refused = []  # the page's style and script are files its policy allows
    page.on(
        "console", lambda message: refused.append(message.text) if message.type == "error" else None
    )
    page.goto(link)
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert opted_out(runtime, arranged.emails[0])
    assert not opted_out(runtime, arranged.emails[1])
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 245, 247)"  # public.css applied
    assert refused == []


def test_with_scripts_off_the_page_waits_for_the_button(browser, web, runtime, smtp_server):  # noqa: F811
    arranged = arrange(web.server.config.app.state.runtime, smtp_server, 1)
    wait_until(lambda: campaign(runtime, arranged.campaign_id).status == "SENT", timeout=60)
    html = smtp_server.messages[0].message.get_body(("html",)).get_content()
    link = re.search(r"href=['\"]([^'\"]+/u/[0-9a-f]{64})", html).group(1)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(link)
        expect(page.get_by_role("heading", name="Unsubscribe")).to_be_visible()
        assert not opted_out(runtime, arranged.emails[0])  # a link scanner changes nothing
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        assert opted_out(runtime, arranged.emails[0])
    finally:
        context.close()


def test_an_invalid_link_shows_a_generic_page(page, web):
    page.goto("/u/" + "0" * 64)
    expect(page.get_by_role("heading", name="This link is not valid")).to_be_visible()
