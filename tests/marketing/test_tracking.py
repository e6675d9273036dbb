"""The public endpoints in every message: the open pixel and the unsubscribe page."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
from sqlalchemy import select, update

from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.marketing import unsubscribe
from herald.marketing.models import MarketingSend
from herald.orgs.models import Org
from herald.web.templating import csp_header
from tests.marketing.engine import (
    arrange,
    assert_counters_match_sends,
    assert_fails_without_token,
    campaign,
    mark_delivered,
    sends,
    wait_until,
)


def contact_opted_out(runtime, email: str) -> bool:
    with unit_of_work(runtime.sessions, write=False) as session:
        return bool(session.scalar(select(Contact.marketing_opt_out).where(Contact.email == email)))


def test_the_pixel_is_a_gif_without_cookies_and_counts_one_unique_open(
    client, runtime, smtp_server
):
    arranged = arrange(runtime, smtp_server, 3)
    mark_delivered(runtime, arranged.campaign_id)
    token = sends(runtime, arranged.campaign_id)[0].token
    for _ in range(3):
        response = client.get(f"/t/{token}.gif")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content.startswith(b"GIF89a")
        assert "set-cookie" not in response.headers
        assert "no-store" in response.headers["cache-control"]
    wait_until(lambda: campaign(runtime, arranged.campaign_id).opens == 1, timeout=10)
    client.get(f"/t/{sends(runtime, arranged.campaign_id)[1].token}.gif")
    wait_until(lambda: campaign(runtime, arranged.campaign_id).opens == 2, timeout=10)
    assert_counters_match_sends(runtime, arranged.campaign_id)
    assert campaign(runtime, arranged.campaign_id).open_rate == 2 / 3


def test_an_open_of_a_message_not_delivered_is_not_counted(client, runtime, smtp_server):
    """Opens count against deliveries, so the open rate never passes 1."""
    arranged = arrange(runtime, smtp_server, 1)
    client.get(f"/t/{sends(runtime, arranged.campaign_id)[0].token}.gif")
    import time

    time.sleep(1.5)
    assert campaign(runtime, arranged.campaign_id).opens == 0


def test_unknown_or_malformed_pixel_tokens_still_get_the_gif_and_change_nothing(
    client, runtime, smtp_server
):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for bad in (tampered, "x" * 64, "short", "..%2F..%2Fetc%2Fpasswd", "%00", "a/b/c"):
        response = client.get(f"/t/{bad}.gif")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
    client.get("/t/" + "a" * 64 + ".gif")
    import time

    time.sleep(1.5)
    assert campaign(runtime, arranged.campaign_id).opens == 0


def test_get_on_the_unsubscribe_link_changes_nothing(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    response = client.get(f"/u/{token}")
    assert response.status_code == 200
    assert '<form id="unsubscribe" method="post"' in response.text
    assert "<button" in response.text  # works with scripts off
    assert '<script src="/static/public.js"></script>' in response.text  # posts it at once
    assert response.headers["content-security-policy"] == csp_header()
    assert "set-cookie" not in response.headers
    assert not contact_opted_out(runtime, arranged.emails[0])


def test_posting_the_page_unsubscribes_and_repeating_is_harmless(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 2)
    # the sends' order is not the contacts' (SQLite inserts them by token): pair by address
    posted, other = sends(runtime, arranged.campaign_id)
    token = posted.token
    for _ in range(2):
        response = client.post(f"/u/{token}")
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
    assert contact_opted_out(runtime, posted.email)
    assert not contact_opted_out(runtime, other.email)
    assert "You are unsubscribed" in client.get(f"/u/{token}").text


def test_rfc8058_one_click_post_urlencoded_and_multipart(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 2)
    first, second = (s.token for s in sends(runtime, arranged.campaign_id))
    response = client.post(f"/u/{first}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "set-cookie" not in response.headers
    response = client.post(f"/u/{second}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert all(contact_opted_out(runtime, e) for e in arranged.emails)


def test_unknown_or_tampered_unsubscribe_tokens_get_a_generic_page(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for bad in (tampered, "nope", "A" * 64):
        for method in ("GET", "POST"):
            response = client.request(method, f"/u/{bad}")
            assert response.status_code == 404
            assert "This link is not valid" in response.text
            assert arranged.emails[0] not in response.text
    assert not contact_opted_out(runtime, arranged.emails[0])


PAGE_HEADERS = ["cache-control", "referrer-policy", "x-content-type-options"]


def assert_public_page(response) -> None:  # type: ignore[no-untyped-def]
    """The public page's headers, in order, and no inline code: its style and script are
    same-origin files, and its CSP allows nothing inline (so no nonce either)."""
    names = [name for name in response.headers if name not in ("date", "server")]
    assert names == ["content-security-policy", *PAGE_HEADERS, "content-length", "content-type"]
    assert [response.headers[name] for name in PAGE_HEADERS] == [
        "no-store",
        "no-referrer",
        "nosniff",
    ]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    policy = response.headers["content-security-policy"]
    assert policy == csp_header()
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "nonce-" not in policy and "unsafe-inline" not in policy
    assert '<link rel="stylesheet" href="/static/public.css">' in response.text
    assert not re.search(r"<style|<script(?![^>]*\ssrc=)|\son[a-z]+=", response.text)


def test_every_public_page_answer_has_its_headers_and_no_inline_code(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    for method, path, status in [
        ("GET", f"/u/{token}", 200),
        ("POST", f"/u/{token}", 200),
        ("POST", f"/u/{token}", 200),
        ("POST", "/u/" + "a" * 64, 404),
        ("POST", "/u/nope", 404),
        ("GET", f"/u/{token}", 200),
        ("GET", f"/c/{token}/99", 404),  # the tracked links' invalid page is the same page
    ]:
        response = client.request(method, path)
        assert response.status_code == status
        assert_public_page(response)
    # the standard library names .js text/ or application/javascript, by its version and the OS
    for name, kinds in (("public.css", ("text/css",)), ("public.js", JAVASCRIPT)):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kinds)


JAVASCRIPT = ("text/javascript", "application/javascript")


def test_each_contact_gets_its_own_page(client, runtime, smtp_server):
    """Pages are reused by their values: a contact never sees another contact's hint or
    another org's name."""
    first, second = arrange(runtime, smtp_server, 2), arrange(runtime, smtp_server, 1)
    with unit_of_work(runtime.sessions) as session:  # another hint in the same org
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.id == sends(runtime, first.campaign_id)[1].id)
            .values(email="zed@elsewhere.test")
        )
    pages = []
    for send in [*sends(runtime, first.campaign_id), *sends(runtime, second.campaign_id)]:
        with unit_of_work(runtime.sessions, write=False) as session:
            org_name = session.scalar(select(Org.name).where(Org.id == send.org_id))
        local, _, domain = send.email.partition("@")
        pages.append((send.token, f"{local[0]}***@{domain}", org_name))
    hints, names = {hint for _, hint, _ in pages}, {name for _, _, name in pages}
    assert len(hints) == 2 and len(names) == 2
    for token, hint, org_name in pages * 2:
        others = (hints - {hint}) | (names - {org_name})
        for method in ("GET", "POST"):
            response = client.request(method, f"/u/{token}")
            assert response.status_code == 200
            assert f"{hint} will" in response.text or f"to {hint}?" in response.text
            assert f"from {org_name}" in response.text
            assert not any(other in response.text for other in others)


def test_a_repeated_one_click_changes_nothing_more(client, runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token

    def state() -> tuple[object, ...]:
        with unit_of_work(runtime.sessions, write=False) as session:
            send = session.scalars(select(MarketingSend).where(MarketingSend.token == token)).one()
            contact = session.scalars(select(Contact).where(Contact.id == send.contact_id)).one()
            return send.unsubscribed_at, contact.marketing_opt_out, contact.updated_at

    assert client.post(f"/u/{token}").status_code == 200
    first = state()
    assert first[0] is not None and first[1] is True
    assert client.post(f"/u/{token}").status_code == 200
    assert state() == first


def test_one_click_opts_out_only_a_contact_of_the_sends_own_org(client, runtime, smtp_server):
    """A send whose contact id names another org's contact changes nothing in that org."""
    ours = arrange(runtime, smtp_server, 1, launch=True)
    theirs = arrange(runtime, smtp_server, 1, launch=True)
    send = sends(runtime, ours.campaign_id)[0]
    other = sends(runtime, theirs.campaign_id)[0]
    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.id == send.id)
            .values(contact_id=other.contact_id)
        )
    response = client.post(f"/u/{send.token}")
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert not contact_opted_out(runtime, theirs.emails[0])
    assert not contact_opted_out(runtime, ours.emails[0])  # no longer its send's contact


def test_one_batch_of_two_orgs_new_repeated_and_unknown_tokens_shows_each_its_own_page(
    runtime, smtp_server
):
    """What each POST of a batch is shown: its own org and address, whether the batch
    marked its send, found it already unsubscribed, or did not know it."""
    first, second = (arrange(runtime, smtp_server, 2, launch=True) for _ in range(2))
    ours, theirs = sends(runtime, first.campaign_id), sends(runtime, second.campaign_id)
    unsubscribe.unsubscribe_tokens(runtime.sessions, [ours[1].token])  # already unsubscribed
    with unit_of_work(runtime.sessions, write=False) as session:
        names = {
            org_id: session.scalar(select(Org.name).where(Org.id == org_id))
            for org_id in (first.org_id, second.org_id)
        }
    tokens = sorted([ours[0].token, ours[1].token, theirs[0].token, "unknown-token"])
    applied = unsubscribe.unsubscribe_tokens(runtime.sessions, tokens)
    shown = {token: (d.org_name, d.email_hint) for token, d in applied.found.items()}
    assert shown == {
        send.token: (names[org_id], unsubscribe.Unsubscribed("", send.email).email_hint)
        for send, org_id in [
            (ours[0], first.org_id),
            (ours[1], first.org_id),
            (theirs[0], second.org_id),
        ]
    }
    assert sorted(send_id for send_id, _ in applied.marked) == sorted([ours[0].id, theirs[0].id])
    assert contact_opted_out(runtime, ours[0].email)
    assert contact_opted_out(runtime, theirs[0].email)
    assert not contact_opted_out(runtime, theirs[1].email)


def _hold_contact_write(runtime, email: str, herald_writer: bool, held: threading.Event) -> None:
    """Another writer's open transaction on the contact for 0.6 s: Herald's own (a worker,
    say) or one from outside Herald (the sqlite3 shell, psql), which skips Herald's queue
    of SQLite writers."""
    touch = update(Contact).where(Contact.email == email).values(first_name="Held")
    if herald_writer:
        with unit_of_work(runtime.sessions) as session:
            session.execute(touch)
            held.set()
            time.sleep(0.6)
        return
    with runtime.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as conn:
        conn.execute(touch)
        held.set()
        time.sleep(0.6)
        conn.commit()


@pytest.mark.parametrize("herald_writer", [True, False], ids=["herald-writer", "outside-writer"])
def test_a_one_click_meeting_another_writer_waits_its_turn_and_unsubscribes(
    client, runtime, smtp_server, herald_writer
):
    """On SQLite the batch first tries on the event loop's thread without waiting; when
    another writer has the lock it must wait on a thread, not fail, and not hold up the
    event loop meanwhile."""
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    held = threading.Event()
    writer = threading.Thread(
        target=_hold_contact_write, args=(runtime, arranged.emails[0], herald_writer, held)
    )
    writer.start()
    assert held.wait(5)
    answers: dict[str, object] = {}

    def post() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=str(client.base_url)) as other:
            answers["response"] = other.post(f"/u/{token}")
        answers["waited"] = time.monotonic() - started

    poster = threading.Thread(target=post)
    poster.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert client.get(f"/t/{token}.gif").status_code == 200
    assert time.monotonic() - started < 0.25  # the server answers while the POST waits
    assert poster.is_alive()
    poster.join(10)
    writer.join()
    response = answers["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert answers["waited"] > 0.3  # it met the other writer
    assert contact_opted_out(runtime, arranged.emails[0])
    with unit_of_work(runtime.sessions, write=False) as session:  # and the other's write stays
        held_name = session.scalar(
            select(Contact.first_name).where(Contact.email == arranged.emails[0])
        )
    assert held_name == "Held"


def test_a_one_click_that_fails_answers_the_contracts_500_and_the_next_one_works(
    client, runtime, smtp_server, monkeypatch, capfd
):
    arranged = arrange(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token

    broken = (unsubscribe, "unsubscribe_tokens")
    assert_fails_without_token(
        monkeypatch, capfd, broken, lambda: client.post(f"/u/{token}"), token
    )
    assert not contact_opted_out(runtime, arranged.emails[0])
    assert client.post(f"/u/{token}").status_code == 200
    assert contact_opted_out(runtime, arranged.emails[0])
