"""Human or machine: each rule on its own (the functions of herald.marketing.classify), then
each as a person or a program meets it over HTTP. Machine hits are counted apart, never
dropped; only a class and a reason are kept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import time

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from herald.db import unit_of_work
from herald.marketing import classify
from herald.marketing.classify import HitClassifier, Reason
from herald.marketing.clicks import ClickHit, record_clicks
from herald.marketing.models import MarketingClick, MarketingSend
from herald.settings import Settings
from tests.conftest import TEST_SECRET
from tests.marketing.engine import (
    assert_counters_match_sends,
    campaign,
    mark_delivered,
    sends,
    serve_process,
    stop_process,
    wait_until,
)
from tests.marketing.test_clicks import BROWSER, click, delivered, flushed, links_of

pytestmark = pytest.mark.slow  # app servers of their own, and floods of clicks

APPLE = [ipaddress.ip_network("17.0.0.0/8")]
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
PEOPLE = [
    BROWSER["User-Agent"],
    SAFARI,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 Chrome/120 Mobile Safari",
    "Thunderbird/128.5.0",
]
# Image proxies that fetch when the person opens the message: people.
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
SCANNERS = [
    "",
    "   ",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Java/17.0.2",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0.0.0 Safari/537.36",
    "Barracuda Sentinel (EE)",
    "Mimecast-LinkScanner",
    "facebookexternalhit/1.1",
]
T0 = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC).timestamp()  # the rules take epoch seconds


def seconds(n: float) -> float:
    return n


# --- each rule -------------------------------------------------------------------------------


def test_rule_client_address_is_the_address_the_request_reports() -> None:
    assert classify.client_address("17.1.2.3") == ipaddress.ip_address("17.1.2.3")
    assert classify.client_address("2620:149::1") == ipaddress.ip_address("2620:149::1")
    for junk in (None, "", "unknown", "17.1.2", "not an address"):
        assert classify.client_address(junk) is None


def test_rule_apple_privacy_proxy_is_an_apple_address_with_the_bare_agent() -> None:
    assert (
        classify.apple_privacy_proxy("17.58.1.2", "Mozilla/5.0", APPLE)
        is Reason.APPLE_PRIVACY_PROXY
    )
    assert classify.apple_privacy_proxy("17.58.1.2", " Mozilla/5.0 ", APPLE) is not None
    # a person's Apple Mail (full agent) behind Apple's network, or the bare agent elsewhere
    assert classify.apple_privacy_proxy("17.58.1.2", SAFARI, APPLE) is None
    assert classify.apple_privacy_proxy("203.0.113.9", "Mozilla/5.0", APPLE) is None
    assert classify.apple_privacy_proxy(None, "Mozilla/5.0", APPLE) is None
    assert classify.apple_privacy_proxy("17.58.1.2", "Mozilla/5.0", []) is None


def test_rule_apple_networks_are_a_setting_with_apples_own_network_by_default() -> None:
    assert Settings(secret_key=TEST_SECRET).apple_networks == tuple(APPLE)
    chosen = Settings(secret_key=TEST_SECRET, apple_proxy_networks="203.0.113.0/24, 2001:db8::/32")
    assert [str(n) for n in chosen.apple_networks] == ["203.0.113.0/24", "2001:db8::/32"]
    with pytest.raises(ValidationError):
        Settings(secret_key=TEST_SECRET, apple_proxy_networks="17.0.0.0/8, nonsense")


def test_rule_scanner_agents_are_machines_and_people_are_not() -> None:
    for agent in SCANNERS:
        assert classify.scanner_agent(agent) is Reason.SCANNER_AGENT, agent
    for agent in (*PEOPLE, GMAIL, YAHOO, "Mozilla/5.0"):
        assert classify.scanner_agent(agent) is None, agent


def test_rule_image_proxies_that_fetch_when_the_person_opens_are_human() -> None:
    rules = HitClassifier(APPLE)
    assert rules.verdict("GET", "66.249.84.1", GMAIL) is None  # a Google address
    assert rules.verdict("GET", "98.136.1.1", YAHOO) is None  # a Yahoo address


def test_rule_head_request() -> None:
    assert classify.head_request("HEAD") is Reason.HEAD_REQUEST
    assert classify.head_request("GET") is None


def test_rule_trap_link() -> None:
    assert classify.trap_link(0) is Reason.TRAP_LINK
    assert classify.trap_link(1) is None
    assert classify.trap_link(None) is None  # an open


def test_rule_fast_click_within_seconds_of_delivery() -> None:
    assert classify.fast_click(T0 + seconds(3), T0) is Reason.FAST_CLICK
    assert classify.fast_click(T0 + seconds(classify.FAST_CLICK_SECONDS - 0.1), T0) is not None
    assert classify.fast_click(T0 + seconds(classify.FAST_CLICK_SECONDS), T0) is None
    assert classify.fast_click(T0 + seconds(600), T0) is None
    # before the delivery was even recorded (the send still in its SMTP transaction)
    assert classify.fast_click(T0, None) is Reason.FAST_CLICK


def test_rule_click_burst_is_another_link_within_a_second_or_two() -> None:
    assert classify.click_burst(T0 + seconds(1), 2, [(T0, 1)]) is Reason.CLICK_BURST
    assert classify.click_burst(T0, 2, [(T0 + seconds(1.5), 1)]) is Reason.CLICK_BURST
    assert classify.click_burst(T0 + seconds(1), 1, [(T0, 1)]) is None  # the same link twice
    assert classify.click_burst(T0 + seconds(classify.BURST_SECONDS + 0.5), 2, [(T0, 1)]) is None
    assert classify.click_burst(T0, 2, []) is None


def test_rule_after_trap_covers_the_scanners_window() -> None:
    assert classify.after_trap(T0 + seconds(30), T0) is Reason.TRAP_LINK
    assert classify.after_trap(T0 + seconds(classify.AFTER_TRAP_SECONDS + 1), T0) is None
    assert classify.after_trap(T0, None) is None


def test_the_request_rules_in_order() -> None:
    rules = HitClassifier(APPLE)
    assert rules.verdict("GET", "17.1.1.1", "Mozilla/5.0") is Reason.APPLE_PRIVACY_PROXY
    assert rules.verdict("HEAD", "17.1.1.1", "Mozilla/5.0") is Reason.HEAD_REQUEST
    assert rules.verdict("GET", "203.0.113.1", "curl/8") is Reason.SCANNER_AGENT
    assert rules.verdict("GET", "203.0.113.1", SAFARI, link=0) is Reason.TRAP_LINK
    assert rules.verdict("GET", "203.0.113.1", SAFARI, link=1) is None
    assert rules.verdict("GET", "203.0.113.1", SAFARI) is None


# --- each rule as it is met ------------------------------------------------------------------


@pytest.fixture
def proxied(database_url, runtime):
    """`herald serve` behind a trusted proxy on loopback (HERALD_FORWARDED_ALLOW_IPS)."""
    env = serve_env(database_url, HERALD_FORWARDED_ALLOW_IPS="127.0.0.1")
    process, url = serve_process(env, "--no-worker")
    yield url
    stop_process(process)


@pytest.fixture
def unproxied(database_url, runtime):
    """`herald serve` trusting no proxy: X-Forwarded-For is ignored."""
    process, url = serve_process(serve_env(database_url), "--no-worker")
    yield url
    stop_process(process)


def serve_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": TEST_SECRET,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_OPEN_FLUSH_SECONDS": "0.2",
        **extra,
    }


def engagement(runtime, send_id: int) -> MarketingSend:
    return next(s for s in sends_of(runtime, send_id) if s.id == send_id)


def sends_of(runtime, send_id: int) -> list[MarketingSend]:
    with unit_of_work(runtime.sessions, write=False) as session:
        campaign_id = session.get(MarketingSend, send_id).campaign_id  # type: ignore[union-attr]
    return sends(runtime, campaign_id)


def open_pixel(url: str, token: str, agent: str, forwarded: str | None = None) -> None:
    headers = {"User-Agent": agent}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    assert httpx.get(f"{url}/t/{token}.gif", headers=headers).status_code == 200


def test_apple_privacy_via_a_trusted_proxy_is_a_machine_open_then_the_person_is_human(
    runtime, smtp_server, proxied
):
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    open_pixel(proxied, send.token, "Mozilla/5.0", forwarded="17.58.101.7")
    wait_until(lambda: campaign(runtime, arranged.campaign_id).opens == 1, timeout=10)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.human_opens, row.machine_opens) == (0, 1)  # flagged, not dropped
    assert engagement(runtime, send.id).machine_reason == "apple_privacy_proxy"
    # the person reads it later: the same send becomes human, moved once
    open_pixel(proxied, send.token, SAFARI, forwarded="203.0.113.50")
    open_pixel(proxied, send.token, SAFARI, forwarded="203.0.113.50")
    wait_until(lambda: campaign(runtime, arranged.campaign_id).human_opens == 1, timeout=10)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.opens, row.human_opens, row.machine_opens) == (1, 1, 0)
    assert not engagement(runtime, send.id).machine
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_without_a_trusted_proxy_a_forwarded_address_is_not_believed(
    runtime, smtp_server, unproxied
):
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    # claims Apple's network, but the peer (127.0.0.1) is who sent it
    open_pixel(unproxied, send.token, "Mozilla/5.0", forwarded="17.58.101.7")
    wait_until(lambda: campaign(runtime, arranged.campaign_id).opens == 1, timeout=10)
    assert campaign(runtime, arranged.campaign_id).human_opens == 1


def test_a_head_on_the_pixel_is_a_machine_open(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 1)
    token = sends(runtime, arranged.campaign_id)[0].token
    assert client.head(f"/t/{token}.gif", headers=BROWSER).status_code == 200
    wait_until(lambda: campaign(runtime, arranged.campaign_id).opens == 1, timeout=10)
    assert campaign(runtime, arranged.campaign_id).machine_opens == 1


def test_a_scanners_agent_clicks_as_a_machine(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    answer = click(client, send.token, 1, **{"User-Agent": "Mimecast-LinkScanner/1.0"})
    assert answer.status_code == 302  # it still gets where the link leads
    flushed(runtime, arranged.campaign_id, 1)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks) == (0, 1)
    assert engagement(runtime, send.id).machine_reason == "scanner_agent"


def test_a_click_seconds_after_delivery_is_a_machine(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 1)
    mark_delivered(runtime, arranged.campaign_id, seconds_ago=1)
    send = sends(runtime, arranged.campaign_id)[0]
    click(client, send.token, 1)
    flushed(runtime, arranged.campaign_id, 1)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.machine_opens) == (0, 1, 1)
    assert engagement(runtime, send.id).machine_reason == "fast_click"


def test_several_links_within_a_second_are_a_machine_and_so_is_the_first(
    client, runtime, smtp_server
):
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    click(client, send.token, 1)
    flushed(runtime, arranged.campaign_id, 1)
    assert campaign(runtime, arranged.campaign_id).clicks == 1  # alone, it looked human
    click(client, send.token, 2)  # another link, within the window (another flush)
    flushed(runtime, arranged.campaign_id, 2)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens, row.machine_opens) == (0, 1, 0, 1)
    assert links_of(runtime, arranged.campaign_id)[:2] == [(0, 0, 1), (0, 0, 1)]
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_the_trap_link_turns_the_sends_hits_machine(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 2)
    scanned, other = sends(runtime, arranged.campaign_id)
    client.get(f"/t/{scanned.token}.gif", headers=BROWSER)
    click(client, scanned.token, 1)
    click(client, other.token, 1)
    flushed(runtime, arranged.campaign_id, 2)
    assert campaign(runtime, arranged.campaign_id).clicks == 2
    assert client.get(f"/c/{scanned.token}/0", headers=BROWSER).status_code == 404
    flushed(runtime, arranged.campaign_id, 3)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens, row.machine_opens) == (1, 1, 1, 1)
    assert links_of(runtime, arranged.campaign_id)[0] == (1, 1, 1)  # only the other's stands
    trapped = engagement(runtime, scanned.id)
    assert trapped.machine and trapped.machine_reason == "trap_link"
    # its pixel fetched right after the trap is the scanner's too
    client.get(f"/t/{scanned.token}.gif", headers=BROWSER)
    time.sleep(runtime.settings.open_flush_seconds + 0.5)  # one flush of opens
    assert engagement(runtime, scanned.id).open_human_at is None
    assert campaign(runtime, arranged.campaign_id).human_opens == 1
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_a_person_after_a_machine_moves_the_send_to_human_once(client, runtime, smtp_server):
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    click(client, send.token, 1, "HEAD")
    flushed(runtime, arranged.campaign_id, 1)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens, row.machine_opens) == (0, 1, 0, 1)
    for _ in range(3):
        click(client, send.token, 1)
    flushed(runtime, arranged.campaign_id, 4)
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens, row.machine_opens) == (1, 0, 1, 0)
    assert links_of(runtime, arranged.campaign_id)[0] == (3, 1, 1)
    assert_counters_match_sends(runtime, arranged.campaign_id)


def test_nothing_of_the_client_is_kept(client, runtime, smtp_server, proxied):
    """Only a class and a reason: no address, no agent in any stored row."""
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    agent = "Mozilla/5.0 (X11; Linux x86_64) UniqueAgentMarker/9.9 Chrome/131 Safari/537.36"
    address = "198.51.100.77"
    headers = {"User-Agent": agent, "X-Forwarded-For": address}
    httpx.get(f"{proxied}/t/{send.token}.gif", headers=headers)
    httpx.get(f"{proxied}/c/{send.token}/1", headers=headers)
    httpx.head(f"{proxied}/c/{send.token}/1", headers=headers)
    flushed(runtime, arranged.campaign_id, 2)
    with unit_of_work(runtime.sessions, write=False) as session:
        stored = [
            *session.execute(select(MarketingSend).where(MarketingSend.id == send.id)).all(),
            *session.execute(select(MarketingClick).where(MarketingClick.send_id == send.id)).all(),
        ]
        values = [
            str(getattr(row[0], column.key))
            for row in stored
            for column in row[0].__table__.columns
        ]
    assert len(stored) == 3
    assert not [v for v in values if "UniqueAgentMarker" in v or address in v or "198.51" in v]


def test_a_burst_turns_only_the_clicks_within_its_window_machine(runtime, smtp_server):
    """A person's earlier click stands when a later burst flags the clicks around it, each
    click written by its own flush (times chosen, so the windows are exact)."""
    arranged = delivered(runtime, smtp_server, 1)
    send = sends(runtime, arranged.campaign_id)[0]
    t0 = time.time() - 600
    for n, (at, link) in enumerate([(t0, 1), (t0 + 3, 1), (t0 + 3.5, 2)]):
        with unit_of_work(runtime.sessions) as session:
            record_clicks(session, [ClickHit(send.token, at, n, link, "")])
    row = campaign(runtime, arranged.campaign_id)
    assert (row.clicks, row.machine_clicks, row.human_opens) == (1, 0, 1)
    assert links_of(runtime, arranged.campaign_id)[:2] == [(1, 1, 1), (0, 0, 1)]
    assert engagement(runtime, send.id).click_human_at.timestamp() == pytest.approx(t0)
    assert_counters_match_sends(runtime, arranged.campaign_id)
