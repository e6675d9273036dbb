"""Tracked links end to end: /c/{token}/{n} redirects to that send's campaign's own link n,
merged for its contact, counts the click (and an open), unique and total per link, and
nothing else ever redirects. The classification rules have their own tests
(test_classify.py); here a "person" is a browser's user agent on a message delivered an hour
ago."""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from herald.db import unit_of_work
from herald.marketing import links as link_targets
from herald.marketing.models import MarketingClick, MarketingLink
from tests.marketing.engine import (
    arrange,
    assert_counters_match_sends,
    assert_fails_without_token,
    campaign,
    mark_delivered,
    sends,
    wait_until,
)
from tests.marketing.factories import caller

pytestmark = pytest.mark.slow  # app servers of their own, and floods of clicks

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
}
LINKS = (
    "https://shop.example/sale?x=1&y=2",
    "https://shop.example/hello/{{firstName|friend}}?who={{email}}",
    "https://{{companyName}}",
)
BODY = (
    f'<p>Hi {{{{firstName}}}}, <a href="{LINKS[0].replace("&", "&amp;")}">sale</a> '
    f'<a href="{LINKS[1]}">hello</a> <a href="{LINKS[2]}">home</a> '
    '<a href="mailto:x@example.com">mail</a> <a href="{{unsubscribeUrl}}">unsubscribe</a></p>'
)
INVALID_PAGE = "This link is not valid"


def delivered(runtime, smtp_server, count: int = 2, **arranged):
    """Sends with tracked links, delivered an hour ago (no worker: marked as one would)."""
    result = arrange(runtime, smtp_server, count, html_body=BODY, **arranged)
    mark_delivered(runtime, result.campaign_id, seconds_ago=3600)
    return result


def click(client: httpx.Client, token: str, n: int, method: str = "GET", **headers: str):
    return client.request(method, f"/c/{token}/{n}", headers={**BROWSER, **headers})


def links_of(runtime, campaign_id) -> list[tuple[int, int, int]]:
    """(clicks, unique clicks, machine clicks) of each link, in order."""
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = session.scalars(
            select(MarketingLink)
            .where(MarketingLink.campaign_id == campaign_id)
            .order_by(MarketingLink.n)
        )
        return [(r.clicks, r.unique_clicks, r.machine_clicks) for r in rows]


def click_rows(runtime, campaign_id) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        found = session.scalars(
            select(MarketingClick.id).where(MarketingClick.campaign_id == campaign_id)
        )
        return len(list(found))


def flushed(runtime, campaign_id, hits: int, timeout: float = 10) -> None:
    """Wait until ``hits`` click rows are written (the recorder flushes every second)."""
    wait_until(lambda: click_rows(runtime, campaign_id) >= hits, timeout=timeout)


def test_launch_stores_the_bodys_links_in_order_as_written(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 1, html_body=BODY)
    with unit_of_work(runtime.sessions, write=False) as session:
        stored = session.execute(
            select(MarketingLink.n, MarketingLink.url)
            .where(MarketingLink.campaign_id == arranged.campaign_id)
            .order_by(MarketingLink.n)
        ).all()
    assert [tuple(row) for row in stored] == list(enumerate(LINKS, start=1))


def test_a_click_redirects_to_its_link_merged_for_the_contact_and_counts(
    client, runtime, smtp_server
):
    arranged = delivered(runtime, smtp_server, 3)
    send, other, _ = sends(runtime, arranged.campaign_id)
    response = click(client, send.token, 2)
    assert response.status_code == 302
    assert response.headers["location"] == (
        f"https://shop.example/hello/Ann?who={quote(send.email, safe='')}"
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    assert click(client, other.token, 1).headers["location"] == LINKS[0]

    flushed(runtime, arranged.campaign_id, 2)
    row = campaign(runtime, arranged.campaign_id)
    # two sends clicked, and a click is an open of its class
    assert (row.clicks, row.machine_clicks, row.opens, row.human_opens) == (2, 0, 2, 2)
    assert row.click_rate == 2 / 3
    assert links_of(runtime, arranged.campaign_id) == [(1, 1, 0), (1, 1, 0), (0, 0, 0)]
    clicked = next(s for s in sends(runtime, arranged.campaign_id) if s.id == send.id)
    assert clicked.clicked_at is not None and clicked.opened_at is not None
    assert not clicked.machine
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_a_first_click_that_fails_answers_the_contracts_500_without_its_token(
    client, runtime, smtp_server, monkeypatch, capfd
):
    """The send's read fails (the database away): the contract's 500, and neither the
    answer nor the log carries the link's token; the next click works."""
    arranged = delivered(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    broken = (link_targets, "unit_of_work")
    assert_fails_without_token(monkeypatch, capfd, broken, lambda: click(client, token, 1), token)
    assert click(client, token, 1).status_code == 302


def test_clicks_are_counted_total_and_unique_per_link(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 3)
    first, second, _third = sends(runtime, arranged.campaign_id)
    for _ in range(3):
        assert click(client, first.token, 1).status_code == 302  # the same link: no burst
    assert click(client, second.token, 1).status_code == 302
    flushed(runtime, arranged.campaign_id, 4)
    assert links_of(runtime, arranged.campaign_id) == [(4, 2, 0), (0, 0, 0), (0, 0, 0)]
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.opens, row.human_opens) == (2, 2, 2)
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_only_the_campaigns_own_links_are_ever_targets(client, runtime, smtp_server):
    """No open redirect: an unknown token, a link number the campaign has not, another
    campaign's link, anything that is not a number: the generic page, no Location."""
    ours = delivered(runtime, smtp_server, 1)
    theirs = arrange(
        runtime,
        smtp_server,
        1,
        html_body=BODY + '<a href="https://theirs.example/4">4</a>',
    )
    mark_delivered(runtime, theirs.campaign_id, seconds_ago=3600)
    token = sends(runtime, ours.campaign_id)[0].token
    other = sends(runtime, theirs.campaign_id)[0].token
    assert click(client, other, 4).headers["location"] == "https://theirs.example/4"
    unknown = token[:-1] + ("0" if token[-1] != "0" else "1")
    for path in (
        f"{unknown}/1",  # a token of no send
        f"{token}/4",  # link 4 is the other campaign's
        f"{token}/99",
        f"{token}/-1",
        f"{token}/1.0",
        f"{token}/1e3",
        f"{token}/9999999999",
        f"{token}/https:%2F%2Fevil.example",
        f"{token}/1/https://evil.example",
        f"{token}/%2F%2Fevil.example",
        f"{token}/",
        f"{token}/x",
        f"{token.upper()}/1",
    ):
        for method in ("GET", "HEAD"):
            response = client.request(method, f"/c/{path}", headers=BROWSER)
            assert response.status_code == 404, (method, path, response.status_code)
            assert "location" not in response.headers, path
            if method == "GET":
                assert INVALID_PAGE in response.text, path
    flushed(runtime, theirs.campaign_id, 1)
    assert click_rows(runtime, ours.campaign_id) == 0


def test_a_link_whose_merged_value_is_no_web_address_leads_nowhere(client, runtime, smtp_server):
    """Link 3 is "https://{{companyName}}": for a contact without a company it would be
    "https://", which has no host: the generic page, nothing counted."""
    arranged = delivered(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    response = click(client, token, 3)
    assert response.status_code == 404 and "location" not in response.headers


def test_head_answers_like_get_and_counts_a_machine_click(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    head = click(client, token, 1, "HEAD")
    assert (head.status_code, head.headers["location"]) == (302, LINKS[0])
    flushed(runtime, arranged.campaign_id, 1)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens, row.machine_opens) == (0, 1, 0, 1)
    assert links_of(runtime, arranged.campaign_id)[0] == (0, 0, 1)
    assert sends(runtime, arranged.campaign_id)[0].machine
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_a_click_on_a_send_not_sent_is_not_counted(client, runtime, smtp_server):
    """Still QUEUED: the message has not gone out, so nobody can have clicked it."""
    arranged = arrange(runtime, smtp_server, 1, html_body=BODY)
    token = sends(runtime, arranged.campaign_id)[0].token
    assert click(client, token, 1).status_code == 302
    client.get(f"/t/{token}.gif")
    time.sleep(runtime.settings.open_flush_seconds + 1)
    assert click_rows(runtime, arranged.campaign_id) == 0
    row = campaign(runtime, arranged.campaign_id)
    assert (row.opens, row.clicks, row.machine_clicks) == (0, 0, 0)


def test_tracking_off_means_no_links_in_the_table_and_nothing_to_follow(
    client, runtime, smtp_server
):
    who = caller(client, runtime)
    draft = client.post(
        "/api/marketing/campaigns",
        json={"name": "Plain", "subject": "Hi", "htmlBody": BODY, "trackClicks": False},
        headers=who.headers,
    ).json()
    assert (draft["trackOpens"], draft["trackClicks"]) == (True, False)
    links = client.get(f"/api/marketing/campaigns/{draft['id']}/links", headers=who.headers)
    assert links.json() == {"items": []}


def test_the_links_api_lists_each_link_in_order_with_its_figures(client, runtime, smtp_server):
    who = caller(client, runtime)
    arranged = arrange(runtime, smtp_server, 2, html_body=BODY, launch=False)
    reader = caller(client, runtime, org_id=arranged.org_id)
    url = f"/api/marketing/campaigns/{arranged.campaign_id}/links"
    draft_links = client.get(url, headers=reader.headers).json()["items"]
    assert [item["url"] for item in draft_links] == list(LINKS)  # a DRAFT: what it would track
    assert {(i["clicks"], i["uniqueClicks"], i["machineClicks"]) for i in draft_links} == {
        (0, 0, 0)
    }
    assert client.get(url, headers=who.headers).status_code == 404  # another org's campaign

    launched = delivered(runtime, smtp_server, 2)
    reader = caller(client, runtime, org_id=launched.org_id)
    first, second = sends(runtime, launched.campaign_id)
    click(client, first.token, 1)
    click(client, second.token, 2, "HEAD")
    flushed(runtime, launched.campaign_id, 2)
    items = client.get(
        f"/api/marketing/campaigns/{launched.campaign_id}/links", headers=reader.headers
    ).json()["items"]
    assert items == [
        {"url": LINKS[0], "clicks": 1, "uniqueClicks": 1, "machineClicks": 0},
        {"url": LINKS[1], "clicks": 0, "uniqueClicks": 0, "machineClicks": 1},
        {"url": LINKS[2], "clicks": 0, "uniqueClicks": 0, "machineClicks": 0},
    ]
    stats = client.get(
        f"/api/marketing/campaigns/{launched.campaign_id}/stats", headers=reader.headers
    ).json()
    # the second send's only click is a HEAD: a machine click, and a machine open
    assert (stats["clicks"], stats["machineClicks"], stats["clickRate"]) == (1, 1, 0.5)
    assert (stats["opens"], stats["humanOpens"], stats["machineOpens"]) == (2, 1, 1)
    assert stats["humanOpenRate"] == 0.5


def test_the_send_rows_and_csv_show_clicked_at_and_the_machine_marker(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 3)
    reader = caller(client, runtime, org_id=arranged.org_id)
    person, scanner, _nobody = sends(runtime, arranged.campaign_id)
    click(client, person.token, 1)
    click(client, scanner.token, 1, "HEAD")
    flushed(runtime, arranged.campaign_id, 2)
    base = f"/api/marketing/campaigns/{arranged.campaign_id}"
    rows = {r["id"]: r for r in client.get(f"{base}/sends", headers=reader.headers).json()["items"]}
    assert rows[person.id]["clickedAt"] and rows[person.id]["machine"] is False
    assert rows[person.id]["machineReason"] is None
    assert rows[scanner.id]["clickedAt"] and rows[scanner.id]["machine"] is True
    assert rows[scanner.id]["machineReason"] == "head_request"
    nobody = next(r for r in rows.values() if r["id"] not in (person.id, scanner.id))
    assert nobody["clickedAt"] is None and nobody["machine"] is False

    text = client.get(f"{base}/sends.csv", headers=reader.headers).text
    table = {r["email"]: r for r in csv.DictReader(io.StringIO(text))}
    assert table[person.email]["clickedAt"] and table[person.email]["machine"] == "false"
    assert table[scanner.email]["clickedAt"] and table[scanner.email]["machine"] == "true"
    assert (
        table[nobody["email"]]["clickedAt"] == "" and table[nobody["email"]]["machine"] == "false"
    )


def test_unique_counts_stay_exact_under_a_flood_from_two_app_processes(
    client, runtime, smtp_server, start_server
):
    """Two app servers (each its own recorder, flushing at its own pace) and many threads
    clicking the same sends' links at once: people (the same link again and again) and
    scanners (HEADs, and two links at once) mixed. Every counter equals a recount."""
    arranged = delivered(runtime, smtp_server, 6)
    tokens = [s.token for s in sends(runtime, arranged.campaign_id)]
    people, scanners = tokens[:3], tokens[3:]
    other = start_server(open_flush_seconds=0.2)
    made: Counter[str] = Counter()
    lock = threading.Lock()

    def flood(base_url: str, worker: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            for i in range(40):
                if i % 2:
                    token, n, method = people[(worker + i) % 3], 1, "GET"
                else:
                    token = scanners[(worker + i) % 3]
                    n, method = (i // 2) % 2 + 1, "HEAD" if i % 3 == 0 else "GET"
                answer = click(http, token, n, method)
                assert answer.status_code == 302
                with lock:
                    made[f"{n}{method}"] += 1

    threads = [
        threading.Thread(target=flood, args=(url, w))
        for w, url in enumerate([str(client.base_url), other.url] * 4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(made.values())
    flushed(runtime, arranged.campaign_id, total, timeout=30)
    assert click_rows(runtime, arranged.campaign_id) == total  # every click kept, none twice
    assert_counters_match_sends(runtime, arranged.campaign_id)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.opens) == (3, 3, 6)
    first, second, _ = links_of(runtime, arranged.campaign_id)
    assert first[1] == 3  # unique: the three people
    assert first[0] + first[2] + second[0] + second[2] == total


def test_an_unknown_campaign_page_token_is_not_a_redirect(client):
    response = client.get(f"/c/{uuid.uuid4().hex * 2}/1", headers=BROWSER)
    assert response.status_code == 404 and "location" not in response.headers


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_trap_link_leads_nowhere(client, runtime, smtp_server, method):
    arranged = delivered(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    response = client.request(method, f"/c/{token}/0", headers=BROWSER)
    assert response.status_code == 404 and "location" not in response.headers
