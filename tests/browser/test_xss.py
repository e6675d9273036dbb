"""Stored XSS in a real browser: a campaign and a contact full of script payloads, shown on
the campaign's detail page (with its preview), the email log and the CRM pages, never run."""

from __future__ import annotations

from herald.db import unit_of_work
from herald.marketing.models import Campaign
from tests.browser.conftest import log_in
from tests.crm.factories import make_contact, unique_email
from tests.marketing.factories import insert_campaign, insert_sends
from tests.orgs.factories import make_org, make_user
from tests.security.test_stored_xss import HOSTILE, PAYLOADS


def _draft(runtime, org_id):  # type: ignore[no-untyped-def]
    with unit_of_work(runtime.sessions) as session:
        row = Campaign(
            org_id=org_id,
            name="Draft " + PAYLOADS[0],
            from_name=PAYLOADS[1],
            subject="Hi " + PAYLOADS[3],
            html_body="<p>Hi {{firstName}}</p>" + HOSTILE,
            text_body=HOSTILE,
            audience={"type": "ALL"},
        )
        session.add(row)
        session.flush()
        return row.id


def test_hostile_campaign_and_contact_data_never_runs_script(page, runtime, web):
    org = make_org(runtime)
    contact = make_contact(
        runtime,
        org.id,
        unique_email("xss"),
        first_name=PAYLOADS[0],
        last_name=PAYLOADS[7],
        company_name=PAYLOADS[3],
    )
    draft_id = _draft(runtime, org.id)
    sent_id = insert_campaign(
        runtime, org.id, "SENT", name="Sent " + PAYLOADS[2], subject=PAYLOADS[0],
        html_body=HOSTILE, recipients=2, failed=1, delivered=1,
    )  # fmt: skip
    insert_sends(
        runtime,
        org.id,
        sent_id,
        [
            {"email": "a@example.com", "first_name": PAYLOADS[0], "last_name": PAYLOADS[1],
             "status": "FAILED", "error": PAYLOADS[4], "attempts": 1},
            {"email": "b@example.com", "first_name": PAYLOADS[3], "last_name": PAYLOADS[9],
             "status": "DELIVERED", "attempts": 1},
        ],
    )  # fmt: skip
    log_in(page, make_user(runtime, org, "ADMIN"))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in (
        f"/marketing/campaigns/{draft_id}",
        f"/marketing/campaigns/{draft_id}/edit",
        "/marketing",
        f"/marketing/campaigns/{sent_id}",
        f"/marketing/campaigns/{sent_id}/log",
        "/crm/contacts",
        f"/crm/contacts/{contact.id}",
    ):
        page.goto(path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        for frame in page.frames:
            assert frame.evaluate("typeof window.__pwned") == "undefined", (path, frame.url)
        assert page.url == web.url + path, path  # no meta refresh, no <base> navigation
    assert dialogs == []
    page.goto(f"/marketing/campaigns/{sent_id}/log")
    assert page.get_by_text(PAYLOADS[0]).first.is_visible()  # shown as text
