"""The tokens in every message (unsubscribe link, open pixel, tracked links) against
tampering, enumeration and timing: a wrong token gets the generic answer and changes
nothing, and the answers do not tell a stranger whether a token exists.

Already shown in tests/marketing/test_tracking.py: the GET of the unsubscribe page changes
nothing (``test_get_on_the_unsubscribe_link_changes_nothing``), a few unknown tokens get the
generic page or the GIF.
"""

from __future__ import annotations

import socket
import statistics
import time
from urllib.parse import urlsplit

import httpx
import pytest

from herald.marketing.public import PIXEL
from tests.marketing.engine import arrange, campaign, mark_delivered, sends, wait_until
from tests.marketing.test_tracking import contact_opted_out

INVALID_PAGE = "This link is not valid"


def tamperings(token: str) -> dict[str, str]:
    """Wrong tokens that stay inside one path segment (they reach the routes)."""
    flip = {c: ("0" if c != "0" else "1") for c in "0123456789abcdef"}
    middle = len(token) // 2
    letters = token if any(c.isalpha() for c in token) else token[:-1] + "a"
    return {
        "last hex char changed": token[:-1] + flip[token[-1]],
        "first hex char changed": flip[token[0]] + token[1:],
        "middle hex char changed": token[:middle] + flip[token[middle]] + token[middle + 1 :],
        "truncated by one": token[:-1],
        "truncated to half": token[:32],
        "extended by one": token + "0",
        "doubled": token + token,
        "upper case": letters.upper(),
        "non-hex letter": token[:-1] + "g",
        "url-encoded NUL": token + "%00",
        "url-encoded junk": "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "encoded traversal": "..%2F..%2F..%2Fetc%2Fpasswd",
        "encoded dot segments": "%2e%2e%2f" + token,
        "SQL-ish": token[:60] + "'--",
        "unicode": token[:63] + "é",
        "very long": "a" * 8000,
        "empty-ish": "%20",
    }


def raw_get(base_url: str, path: str) -> tuple[int, dict[str, str]]:
    """A GET whose path is sent exactly as written (httpx would resolve ``../``)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


@pytest.fixture
def delivered(runtime, smtp_server):
    """Two delivered sends with a tracked link (no worker: marked as a worker would have
    left them)."""
    arranged = arrange(runtime, smtp_server, 2, html_body=LINK_BODY)
    mark_delivered(runtime, arranged.campaign_id)
    return arranged


LINK_BODY = '<p>Hi <a href="https://shop.example/">shop</a> <a href="{{unsubscribeUrl}}">x</a></p>'


def assert_untouched(runtime, arranged) -> None:
    time.sleep(runtime.settings.open_flush_seconds + 0.5)  # past one flush of buffered hits
    row = campaign(runtime, arranged.campaign_id)
    assert (row.opens, row.clicks, row.machine_clicks) == (0, 0, 0)
    for send in sends(runtime, arranged.campaign_id):
        assert send.opened_at is None and send.unsubscribed_at is None
        assert send.clicked_at is None
    assert not any(contact_opted_out(runtime, email) for email in arranged.emails)


def test_tampered_tokens_get_the_generic_answers_and_change_nothing(
    client, live_server, runtime, delivered
):
    token = sends(runtime, delivered.campaign_id)[0].token
    problems = []
    for name, bad in tamperings(token).items():
        for method in ("GET", "POST"):
            page = client.request(method, f"/u/{bad}")
            if page.status_code != 404 or INVALID_PAGE not in page.text:
                problems.append(f"{method} /u/ {name}: {page.status_code}")
            if "set-cookie" in page.headers or delivered.emails[0] in page.text:
                problems.append(f"{method} /u/ {name}: a cookie or the address")
        gif = client.get(f"/t/{bad}.gif")
        if gif.status_code != 200 or gif.content != PIXEL or "set-cookie" in gif.headers:
            problems.append(f"GET /t/ {name}: {gif.status_code} {gif.headers}")
        for method in ("GET", "HEAD"):
            link = client.request(method, f"/c/{bad}/1")
            if link.status_code != 404 or "location" in link.headers:
                problems.append(f"{method} /c/ {name}: {link.status_code} {link.headers}")
            if "set-cookie" in link.headers or (method == "GET" and INVALID_PAGE not in link.text):
                problems.append(f"{method} /c/ {name}: a cookie, or not the generic page")
    # dot segments sent raw: whatever route they reach, no error and no cookie
    for path in (
        f"/u/../u/{token[:-1]}",
        f"/t/../t/{token[:-1]}.gif",
        "/u/../../etc/passwd",
        f"/c/../c/{token[:-1]}/1",
        f"/c/{token}/../../u/{token}",
    ):
        status, headers = raw_get(live_server.url, path)
        if status >= 500 or "set-cookie" in headers:
            problems.append(f"raw {path}: {status}")
    assert not problems, "\n".join(problems)
    assert_untouched(runtime, delivered)


def test_tampering_changes_nothing_and_the_real_tokens_still_work(client, runtime, delivered):
    first, second = sends(runtime, delivered.campaign_id)[:2]
    token = first.token
    for bad in tamperings(token).values():
        client.post(f"/u/{bad}", data={"List-Unsubscribe": "One-Click"})
        client.get(f"/t/{bad}.gif")
        client.get(f"/c/{bad}/1")
        client.get(f"/c/{bad}/0")
    assert_untouched(runtime, delivered)
    # the control: the genuine token does what the tampered ones did not
    client.get(f"/t/{token}.gif")
    wait_until(lambda: campaign(runtime, delivered.campaign_id).opens == 1, timeout=10)
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert contact_opted_out(runtime, first.email)  # the send's own contact, whatever its order
    assert not contact_opted_out(runtime, second.email)


def test_no_kind_of_fetch_short_of_a_post_unsubscribes(client, runtime, delivered):
    """Link scanners and prefetchers: GET with any Accept, HEAD, OPTIONS."""
    token = sends(runtime, delivered.campaign_id)[0].token
    for accept in ("text/html", "*/*", "application/json", "image/*"):
        response = client.get(
            f"/u/{token}", headers={"Accept": accept, "User-Agent": "Mimecast-LinkScanner"}
        )
        assert response.status_code == 200
    for method in ("HEAD", "OPTIONS"):
        assert client.request(method, f"/u/{token}").status_code < 500
    assert_untouched(runtime, delivered)


def test_the_answers_do_not_tell_a_known_token_from_an_unknown_one(client, runtime, delivered):
    """The pixel: byte-for-byte the same answer. The unsubscribe page: a known token shows
    its confirmation (200, with the org and a masked address: it must), every unknown or
    malformed one the same generic page (404) — a stranger learns nothing from trying
    tokens but whether one exists, out of 2^256. Neither sets a cookie."""
    token = sends(runtime, delivered.campaign_id)[0].token
    unknown = "f" * 64 if token != "f" * 64 else "e" * 64

    def answer(response: httpx.Response) -> tuple:
        headers = {k: v for k, v in response.headers.items() if k not in ("date",)}
        return response.status_code, response.content, headers

    known_gif, unknown_gif = client.get(f"/t/{token}.gif"), client.get(f"/t/{unknown}.gif")
    assert answer(known_gif) == answer(unknown_gif)
    assert "set-cookie" not in known_gif.headers

    invalid = [client.get(f"/u/{t}") for t in (unknown, token[:-1] + "x", token.upper(), "x")]
    assert {r.status_code for r in invalid} == {404}
    # the same page for all of them
    assert len({r.content for r in invalid}) == 1
    known = client.get(f"/u/{token}")
    assert known.status_code == 200
    for response in (*invalid, known):
        assert "set-cookie" not in response.headers
        assert response.headers["cache-control"] == "no-store"
    print(f"\n/u/ body length: known {len(known.content)} B, unknown {len(invalid[0].content)} B")


def median_ms(client: httpx.Client, urls: tuple[str, str], rounds: int) -> tuple[float, float]:
    """Median response time of each URL, requests interleaved so drift hits both alike."""
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for i, url in enumerate(urls):
            start = time.perf_counter()
            client.get(url)
            timings[i].append((time.perf_counter() - start) * 1000)
    return statistics.median(timings[0]), statistics.median(timings[1])


@pytest.mark.parametrize("kind", ["pixel", "unsubscribe page"])
def test_known_and_unknown_tokens_take_the_same_time(client, runtime, delivered, kind):
    token = sends(runtime, delivered.campaign_id)[0].token
    unknown = token[:-1] + ("0" if token[-1] != "0" else "1")  # one char off: same index path
    pattern = "/t/{}.gif" if kind == "pixel" else "/u/{}"
    urls = (pattern.format(token), pattern.format(unknown))
    median_ms(client, urls, 20)  # warm up
    known, other = median_ms(client, urls, 200)
    bound = max(2.0, 0.2 * max(known, other))
    print(f"\n{kind}: median known {known:.2f} ms, unknown {other:.2f} ms (bound {bound:.2f} ms)")
    assert abs(known - other) < bound
