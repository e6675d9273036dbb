"""Tracked links: which links of a campaign's HTML are rewritten to /c/, how, and where each
one leads for a recipient (never anywhere but an absolute http(s) URL)."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from herald.errors import ValidationFailed
from herald.mail.compose import CampaignMessage, Recipient, compile_bodies
from herald.mail.links import LINK_BASE_FIELD, LinkTarget, rewrite_links, safe_redirect

BASE = "https://herald.example"
ANN = Recipient("ann+news@example.com", "Ann Zoë", "Lee", "Acme & Co", "tok123")
BODY = """<html><head><style>a { color: red }</style></head><body>
<p><a href="https://shop.example/sale?x=1&amp;y=2">Sale</a>
<a HREF='http://Example.org/{{firstName|friend}}'>Hi</a>
<a href=https://bare.example/path>bare</a>
<a href="mailto:boss@example.com">mail</a> <a href="tel:+441234">call</a>
<a href="#top">top</a> <a href="/relative">rel</a> <a href="{{unsubscribeUrl}}">leave</a>
<a name="anchor">no href</a> <area href="https://map.example/area" alt="map">
<!-- <a href="https://commented.example/">no</a> -->
<script>var s = '<a href="https://script.example/">no</a>';</script>
<img src="https://images.example/logo.png" alt="">
<a title='href="https://fake.example/"' href="https://real.example/">tricky</a>
</p></body></html>"""
TRACKED = (
    "https://shop.example/sale?x=1&y=2",
    "http://Example.org/{{firstName|friend}}",
    "https://bare.example/path",
    "https://map.example/area",
    "https://real.example/",
)


def html_of(raw: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return str(part.get_content())


def test_every_http_link_is_found_in_order_as_written_and_nothing_else() -> None:
    assert compile_bodies(BODY, "").links == TRACKED


def test_the_message_points_each_tracked_link_at_its_number_and_keeps_the_rest() -> None:
    message = CampaignMessage(
        subject="Hi", html_body=BODY, text_body="", from_name="", from_email="a@b.example",
        base_url=BASE,
    )  # fmt: skip
    body = html_of(message.render(ANN))
    for n in range(1, len(TRACKED) + 1):
        assert body.count(f'href="{BASE}/c/tok123/{n}"') == 1
    kept = (
        "mailto:boss@example.com", "tel:+441234", "#top", "/relative", f"{BASE}/u/tok123",
        "https://commented.example/", "https://script.example/",
        "https://images.example/logo.png", "href=&quot;https://fake.example/&quot;",
    )  # fmt: skip
    for as_written in kept:
        assert as_written in body, as_written
    for gone in ("shop.example", "bare.example", "map.example", "real.example", "Example.org"):
        assert gone not in body, gone
    # the hidden trap link, once, before the pixel
    trap = f'<a href="{BASE}/c/tok123/0" style="display:none" aria-hidden="true" tabindex="-1">'
    assert body.count(trap) == 1 and body.index(trap) < body.index(f"{BASE}/t/tok123.gif")


def test_the_text_part_keeps_its_links_as_written() -> None:
    bodies = compile_bodies(BODY, "Visit https://shop.example/sale")
    assert bodies.text.startswith("Visit https://shop.example/sale")
    assert "/c/" not in compile_bodies(BODY, "").text


@pytest.mark.parametrize(
    ("opens", "clicks", "pixel", "trap", "rewritten"),
    [
        (True, True, True, True, True),
        (True, False, True, True, False),
        (False, True, False, True, True),
        (False, False, False, False, False),
    ],
)
def test_tracking_settings_decide_pixel_trap_and_links(opens, clicks, pixel, trap, rewritten):
    message = CampaignMessage(
        subject="Hi", html_body=BODY, text_body="", from_name="", from_email="a@b.example",
        base_url=BASE, track_opens=opens, track_clicks=clicks,
    )  # fmt: skip
    body = html_of(message.render(ANN))
    assert (f"{BASE}/t/tok123.gif" in body) is pixel
    assert (f"{BASE}/c/tok123/0" in body) is trap
    assert (f"{BASE}/c/tok123/1" in body) is rewritten
    assert ('href="https://shop.example/sale?x=1&amp;y=2"' in body) is not rewritten
    assert message.links == (TRACKED if clicks else ())


def test_an_author_cannot_write_the_internal_placeholder() -> None:
    with pytest.raises(ValidationFailed):
        compile_bodies(f'<a href="{{{{{LINK_BASE_FIELD}}}}}/1">x</a>', "")


def test_a_placeholder_hidden_in_entities_of_a_link_is_still_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        compile_bodies('<a href="https://x.example/&#123;&#123;secret}}">x</a>', "text")
    assert refused.value.details[0]["field"] == "htmlBody"


def test_an_href_inside_another_attributes_value_is_not_the_link() -> None:
    source = """<a title='href="https://fake.example/"' href="https://real.example/">x</a>"""
    assert rewrite_links(source) == (
        """<a title='href="https://fake.example/"' href="{{trackedLinkBase}}/1">x</a>""",
        ("https://real.example/",),
    )


def test_rewriting_keeps_line_positions_across_lines_and_crlf() -> None:
    source = '<p>\r\n<a\r\n  class="x"\r\n  href="https://a.example/">a</a>\n<a href="https://b.example/">b</a>'
    rewritten, urls = rewrite_links(source)
    assert urls == ("https://a.example/", "https://b.example/")
    assert rewritten == (
        '<p>\r\n<a\r\n  class="x"\r\n  href="{{trackedLinkBase}}/1">a</a>\n'
        '<a href="{{trackedLinkBase}}/2">b</a>'
    )


VALUES = {
    "firstName": "Zoë & Co/../?x=1#frag",
    "lastName": "",
    "companyName": "Acme",
    "email": "ann+news@example.com",
    "unsubscribeUrl": f"{BASE}/u/tok123",
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/sale?x=1&y=2", "https://shop.example/sale?x=1&y=2"),
        (
            "https://shop.example/?who={{email}}&n={{firstName}}",
            "https://shop.example/?who=ann%2Bnews%40example.com"
            "&n=Zo%C3%AB%20%26%20Co%2F..%2F%3Fx%3D1%23frag",
        ),
        ("https://shop.example/{{lastName|friend}}", "https://shop.example/friend"),
        ("https://shop.example/café menu", "https://shop.example/caf%C3%A9%20menu"),
        ("https://shop.example/a%20b", "https://shop.example/a%20b"),
        ("HTTPS://Shop.example/", "HTTPS://Shop.example/"),
    ],
)
def test_a_link_is_merged_for_the_recipient_with_values_encoded(url: str, expected: str) -> None:
    assert LinkTarget(url).for_recipient(VALUES) == expected


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https:///no-host",
        "http://",
        "//evil.example/",
        "/relative",
        "https://[::1",
        "vbscript:x",
    ],
)
def test_only_an_absolute_http_url_is_ever_a_redirect_target(url: str) -> None:
    assert safe_redirect(url) is None


def test_a_value_cannot_turn_a_link_into_another_host_or_scheme() -> None:
    hostile = {**VALUES, "firstName": "evil.example/@x", "companyName": "javascript:alert(1)"}
    assert LinkTarget("https://{{firstName}}").for_recipient(hostile) == (
        "https://evil.example%2F%40x"
    )
    # a host made of a value stays inside the host: no path, userinfo or second host
    for url in ("https://shop.example/{{companyName}}", "https://shop.example?q={{firstName}}"):
        target = LinkTarget(url).for_recipient(hostile)
        assert target is not None and target.startswith("https://shop.example")
        assert "\r" not in target and "\n" not in target and " " not in target
