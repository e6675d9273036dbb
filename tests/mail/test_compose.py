"""Composed campaign messages: well-formed MIME, exact round trips, no header injection."""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from herald.errors import ValidationFailed
from herald.mail.compose import (
    PIXEL_FIELD,
    CampaignMessage,
    InvalidAddress,
    Recipient,
    compile_bodies,
)
from herald.mail.htmltext import html_to_text
from herald.mail.links import LINK_BASE_FIELD
from herald.mail.merge import BODY_FIELDS, SUBJECT_FIELDS, Template, strip_controls

BASE = "https://herald.example"
HTML = """<!doctype html>
<html><head><style>p { color: #333333; } .big { font-size: 20px }</style></head>
<body><h1 class="big">Hello {{ firstName | there }},</h1>
<p>News for {{companyName}} &amp; friends: <a href="https://acme.example/sale">the sale</a>.</p>
</body></html>"""
ANN = Recipient("ann@example.com", "Ann", "Lee", "Acme & Co", "tok123")
TRAP = f'<a href="{BASE}/c/tok123/0" style="display:none" aria-hidden="true" tabindex="-1"></a>'


def campaign(**overrides: str) -> CampaignMessage:
    fields = {
        "subject": "Hi {{firstName|there}}, news for {{companyName}}",
        "html_body": HTML,
        "text_body": "",
        "from_name": "Acme News",
        "from_email": "news@acme.example",
        "base_url": BASE,
    }
    fields.update(overrides)
    return CampaignMessage(**fields)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    """The parsed message, after checking the wire format and that nothing is defective."""
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    assert max(len(line) for line in lines) <= 998
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert part.defects == []
        for name, value in part.items():
            assert value.defects == (), (name, value.defects)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    return lf(text_part.get_content()), lf(html_part.get_content())


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def values_for(r: Recipient) -> dict[str, str]:
    return {
        "firstName": strip_controls(r.first_name),
        "lastName": strip_controls(r.last_name),
        "companyName": strip_controls(r.company_name),
        "email": strip_controls(r.email),
        "unsubscribeUrl": f"{BASE}/u/{r.token}",
        PIXEL_FIELD: f"{BASE}/t/{r.token}.gif",
        LINK_BASE_FIELD: f"{BASE}/c/{r.token}",
    }


def expected_bodies(html_body: str, text_body: str, r: Recipient) -> tuple[str, str]:
    bodies = compile_bodies(html_body, text_body)
    values = values_for(r)
    allowed = (*BODY_FIELDS, PIXEL_FIELD, LINK_BASE_FIELD)
    html_template = Template.parse(bodies.html, "htmlBody", allowed=allowed)
    text = Template.parse(bodies.text, "textBody").render(values)
    return text, html_template.render(values, escape_html=True)


def test_a_message_has_every_header_the_contract_asks_for() -> None:
    raw = campaign().render(ANN)
    message = parse(raw)
    assert str(message["From"]) == "Acme News <news@acme.example>"
    assert str(message["To"]) == "Ann Lee <ann@example.com>"
    assert str(message["Subject"]) == "Hi Ann, news for Acme & Co"
    assert str(message["MIME-Version"]) == "1.0"
    assert str(message["List-Unsubscribe"]) == f"<{BASE}/u/tok123>"
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"<[0-9a-f]{32}@acme\.example>", str(message["Message-ID"]))
    assert [p.get_content_charset() for p in message.iter_parts()] == ["utf-8", "utf-8"]
    assert all(line.isascii() for line in header_lines(raw))


def test_bodies_are_merged_inlined_and_carry_link_and_pixel() -> None:
    text, body = parts(parse(campaign().render(ANN)))
    assert text == (
        "Hello Ann,\n\nNews for Acme & Co & friends: the sale (https://acme.example/sale).\n\n"
        f"Unsubscribe: {BASE}/u/tok123\n"
    )
    assert "<style" not in body
    assert '<h1 class="big" style="font-size: 20px;">Hello Ann,</h1>' in body
    assert "News for Acme &amp; Co &amp; friends" in body
    assert body.count(f'<a href="{BASE}/u/tok123"') == 1
    assert body.count(f'src="{BASE}/t/tok123.gif"') == 1
    assert body.count("<img") == 1
    pixel_at = body.index("<img")
    assert pixel_at < body.index("</body>") and pixel_at > body.index("Unsubscribe</a>")


def test_an_author_placed_unsubscribe_link_is_not_doubled() -> None:
    html_body = '<p>Hi</p><p><a href="{{unsubscribeUrl}}">Leave</a></p>'
    text_body = "Hi\nLeave: {{ unsubscribeUrl }}"
    text, body = parts(parse(campaign(html_body=html_body, text_body=text_body).render(ANN)))
    assert text == f"Hi\nLeave: {BASE}/u/tok123\n"
    assert body == (
        f'<p>Hi</p><p><a href="{BASE}/u/tok123">Leave</a></p>{TRAP}<img '
        f'src="{BASE}/t/tok123.gif" '
        'width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">\n'
    )


def test_a_fragment_without_body_tag_gets_footer_and_pixel_at_the_end() -> None:
    _, body = parts(parse(campaign(html_body="<p>Only {{email}}</p>").render(ANN)))
    assert body.startswith("<p>Only ann@example.com</p><p ")
    assert body.endswith('style="display:block;border:0;width:1px;height:1px">\n')


def test_remote_stylesheets_are_never_fetched() -> None:
    html_body = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
        "<style>p{color:red} @media (max-width:600px){p{color:blue}}</style></head>"
        "<body><p>x</p></body></html>"
    )
    _, body = parts(parse(campaign(html_body=html_body).render(ANN)))
    assert '<p style="color: red;">x</p>' in body
    assert "@media (max-width:600px)" in body


@pytest.mark.parametrize(
    ("first", "last", "shown"),
    [
        ("Ann", "Lee", "Ann Lee"),
        ("", "Lee", "Lee"),
        ("Zoë", "Ångström", "Zoë Ångström"),
        ("محمد", "علي", "محمد علي"),
        ("李", "小龙", "李 小龙"),
        ("🎉 Party", "👨‍👩‍👧", "🎉 Party 👨‍👩‍👧"),
        ('Bob "The Builder"', "O'Neil, Jr. <x@y>", 'Bob "The Builder" O\'Neil, Jr. <x@y>'),
        ("back\\slash", "=?utf-8?b?QQ==?=", "back\\slash =?utf-8?b?QQ==?="),
        ("  spaced\t out  ", "", "spaced out"),
        ("Éloïse-" * 20, "Marie-" * 20, ("Éloïse-" * 20) + " " + ("Marie-" * 20)),
    ],
)
def test_the_to_display_name_decodes_exactly(first: str, last: str, shown: str) -> None:
    r = Recipient("ann@example.com", first, last, "", "t")
    message = parse(campaign().render(r))
    (address,) = message["To"].addresses
    assert (address.display_name, address.addr_spec) == (shown, "ann@example.com")


@pytest.mark.parametrize("name", ["a" * 2000, "é" * 2000, "日本" * 500])
def test_an_absurdly_long_name_is_cut_to_keep_lines_legal(name: str) -> None:
    message = parse(campaign(from_name=name).render(Recipient("a@b.example", name, "", "", "t")))
    for header in ("From", "To"):
        shown = message[header].addresses[0].display_name
        assert 100 < len(shown) < len(name) and name.startswith(shown)


def test_no_name_gives_a_bare_address() -> None:
    raw = campaign(from_name="").render(Recipient("a@example.com", "", " ", "", "t"))
    assert b"\r\nTo: a@example.com\r\n" in raw
    assert raw.startswith(b"From: news@acme.example\r\n")


@pytest.mark.parametrize(
    "from_name",
    ["Acme, Inc.", 'The "Best" Shop', "Café Ünïcode", "Nadia 🌸 نادية", "x" * 120],
)
def test_the_from_display_name_decodes_exactly(from_name: str) -> None:
    message = parse(campaign(from_name=from_name).render(ANN))
    (address,) = message["From"].addresses
    assert (address.display_name, address.addr_spec) == (from_name, "news@acme.example")


@pytest.mark.parametrize(
    "subject",
    [
        "Plain subject",
        "Réduction de 20 % — aujourd'hui seulement",
        "🎉🎉 Big news 🚀",
        "مرحبا بكم في النشرة الإخبارية",
        "שלום {{firstName}} (עברית)",
        "日本語の件名です。" * 8,
        "A long plain ASCII subject that keeps going " * 6,
        "x" * 300,
        "  leading and trailing spaces  ",
        "odd =?utf-8?q?looks_encoded?= text",
        "tab\tinside",
    ],
)
def test_the_subject_decodes_exactly(subject: str) -> None:
    raw = campaign(subject=subject).render(ANN)
    message = parse(raw)
    assert str(message["Subject"]) == subject.replace("{{firstName}}", "Ann")
    folded = raw.split(b"\r\nSubject:", 1)[1].split(b"\r\nDate:", 1)[0]
    assert all(len(line) <= 78 for line in (b"Subject:" + folded).split(b"\r\n"))


def test_an_empty_merged_subject_is_an_empty_header() -> None:
    message = parse(
        campaign(subject="{{firstName}}").render(Recipient("a@b.example", "", "", "", "t"))
    )
    assert str(message["Subject"]) == ""


@pytest.mark.parametrize(
    ("recipient", "subject"),
    [
        (
            Recipient("a@example.com", "Bob\r\nBcc: victim@evil.example", "", "", "t"),
            "{{firstName}}",
        ),
        (Recipient("a@example.com", "Bob\nBcc: victim@evil.example\n", "", "", "t"), "Hi"),
        (Recipient("a@example.com", "", "", "X\r\n\r\n<html>body</html>", "t"), "{{companyName}}"),
        (Recipient("a@example.com", 'Bob" <victim@evil.example>, "Eve', "", "", "t"), "x"),
        (Recipient("a@example.com", "Bob\rBcc: victim@evil.example", "\x00", "", "t"), "x"),
    ],
)
def test_header_injection_is_neutralized(recipient: Recipient, subject: str) -> None:
    raw = campaign(subject=subject + "\r\nBcc: literal@evil.example").render(recipient)
    message = parse(raw)
    assert message["Bcc"] is None
    assert not any(line.lower().startswith(b"bcc") for line in header_lines(raw))
    (address,) = message["To"].addresses
    assert address.addr_spec == "a@example.com"
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    assert message.get_content_type() == "multipart/alternative"
    assert len(list(message.iter_parts())) == 2


@pytest.mark.parametrize(
    "email",
    [
        "a@b.example\r\nBcc: x@y.example",
        "a b@c.example",
        "<a@b.example>",
        "a@b.example, c@d.example",
        "nobody",
        "@x",
        "a@",
    ],
)
def test_an_unusable_address_is_refused(email: str) -> None:
    with pytest.raises(InvalidAddress):
        campaign().render(Recipient(email, "", "", "", "t"))
    with pytest.raises(InvalidAddress):
        campaign(from_email=email)


def test_an_internationalized_domain_is_sent_in_ascii() -> None:
    message = parse(campaign().render(Recipient("zoe@müller.example", "", "", "", "t")))
    assert message["To"].addresses[0].addr_spec == "zoe@xn--mller-kva.example"


def test_a_non_ascii_local_part_gets_a_utf8_to_header() -> None:
    # RFC 6532: only an SMTPUTF8 transport can deliver it; the stdlib parser flags it.
    raw = campaign().render(Recipient("zoë@müller.example", "Zoë", "", "", "t"))
    assert "\r\nTo: =?utf-8?b?Wm/Dqw==?= <zoë@xn--mller-kva.example>\r\n".encode() in raw
    assert all(line.isascii() for line in header_lines(raw) if not line.startswith(b"To:"))


def test_an_internationalized_sender_domain_is_ascii_everywhere() -> None:
    c = campaign(from_email="news@bücher.example")
    message = parse(c.render(ANN))
    assert c.envelope_from() == "news@xn--bcher-kva.example"
    assert message["From"].addresses[0].addr_spec == "news@xn--bcher-kva.example"
    assert str(message["Message-ID"]).endswith("@xn--bcher-kva.example>")


def test_bad_tokens_message_ids_dates_and_base_urls_are_refused() -> None:
    c = campaign()
    with pytest.raises(ValueError, match="token"):
        c.render(Recipient("a@b.example", "", "", "", "../x"))
    with pytest.raises(ValueError, match="message_id"):
        c.render(ANN, message_id="<a@b>\r\nBcc: x@y")
    with pytest.raises(ValueError, match="date"):
        c.render(ANN, date="Mon\r\nBcc: x@y")
    for url in ["ftp://x.example", "https://x.example/{{email}}", "https://x.example/a b", ""]:
        with pytest.raises(ValueError, match="base_url"):
            campaign(base_url=url)
    with pytest.raises(ValueError, match="boundary"):
        CampaignMessage(
            subject="s",
            html_body="",
            text_body="",
            from_name="",
            from_email="a@b.example",
            base_url=BASE,
            boundary="plain",
        )


def test_message_ids_are_unique_and_can_be_given() -> None:
    c = campaign()
    ids = {str(parse(c.render(ANN))["Message-ID"]) for _ in range(50)}
    assert len(ids) == 50
    given_id = c.new_message_id()
    assert str(parse(c.render(ANN, message_id=given_id))["Message-ID"]) == given_id


def test_unknown_placeholders_fail_the_compile_naming_the_field() -> None:
    for field, kwargs in [
        ("subject", {"subject": "Hi {{unsubscribeUrl}}"}),
        ("htmlBody", {"html_body": "<p>{{ 7*7 }}</p>"}),
        ("textBody", {"text_body": "Hi {{name}}"}),
        ("htmlBody", {"html_body": "<p>&#123;&#123;secret&#125;&#125;</p>"}),
        ("htmlBody", {"html_body": f"<p>{{{{{PIXEL_FIELD}}}}}</p>"}),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            campaign(**kwargs)
        assert caught.value.details[0]["field"] == field


def test_template_engine_syntax_is_sent_literally() -> None:
    html_body = "<p>{% if x %}${7*7}<%= 7*7 %>{{ lone</p>"
    text, body = parts(parse(campaign(html_body=html_body, subject="{% x %} ${y}").render(ANN)))
    assert body.startswith("<p>{% if x %}${7*7}<%= 7*7 %>{{ lone</p>")
    assert text.startswith("{% if x %}${7*7}")


def test_a_mostly_non_ascii_body_is_sent_in_base64() -> None:
    text_body = "Привет, {{firstName}}! " * 40 + "\nВторая строка"  # noqa: RUF001
    html_body = "<p>" + "Здравствуйте, {{firstName}}! " * 40 + "</p>"
    raw = campaign(text_body=text_body, html_body=html_body).render(ANN)
    message = parse(raw)
    assert [p["Content-Transfer-Encoding"] for p in message.iter_parts()] == ["base64"] * 2
    text, body = parts(message)
    assert (text, body) == expected_bodies(html_body, text_body, ANN)
    assert max(len(line) for line in raw.split(b"\r\n")[20:]) <= 76


def test_quoted_printable_lines_stay_short_and_decode_exactly() -> None:
    text_body = (
        "A line with trailing spaces   \n.\n" + "x" * 500 + "\n\tTabbed = sign =3D\nFrom here"
    )
    html_body = "<p>" + "é" * 10 + "y" * 300 + "</p>\n.\n"
    raw = campaign(text_body=text_body, html_body=html_body).render(ANN)
    message = parse(raw)
    assert [p["Content-Transfer-Encoding"] for p in message.iter_parts()] == [
        "quoted-printable"
    ] * 2
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76
    assert not any(line.endswith((b" ", b"\t")) for line in body_lines)
    assert parts(message) == expected_bodies(html_body, text_body, ANN)


def test_whitespace_before_a_line_break_does_not_overflow_the_line() -> None:
    # binascii.b2a_qp alone makes a 77-character line of this one.
    text_body = "===aaaaaaaéé==aaaaaaaaaaaaaaaaaaaé==aaaé \nnext"
    raw = campaign(text_body=text_body).render(ANN)
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
    assert parts(parse(raw))[0] == text_body + "\n\nUnsubscribe: https://herald.example/u/tok123\n"


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.text(st.sampled_from("ab =.\t\né"), max_size=170),
            st.sampled_from(["{{firstName}}", "{{lastName|x y }}", "{{unsubscribeUrl}}"]),
        ),
        max_size=10,
    ),
    first=st.text(st.sampled_from("ab =.\té"), max_size=120),
    last=st.text(st.sampled_from("c \t"), max_size=90),
)
def test_quoted_printable_joins_pieces_within_76_columns(
    pieces: list[str], first: str, last: str
) -> None:
    text_body = "".join(pieces) or "x"
    r = Recipient("a@example.com", first, last, "", "t" * 64)
    raw = campaign(text_body=text_body, html_body="<p>" + text_body).render(r)
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76
    assert not any(line.endswith((b" ", b"\t")) for line in body_lines)
    assert parts(parse(raw)) == expected_bodies("<p>" + text_body, text_body, r)


def test_html_to_text() -> None:
    source = """<html><head><title>T</title><style>p{color:red}</style></head><body>
    <h1>Hello {{ firstName | there }},</h1><p>We   have <b>news</b> &amp; more.<br>Line two</p>
    <ul><li>One</li><li>Two <a href="https://x.example/a">link</a></li></ul>
    <table><tr><td>A</td><td>B</td></tr></table>
    <p><a href="https://x.example">https://x.example</a> <a href="#top">top</a>
    <img src="logo.png" alt="Logo"></p><script>alert(1)</script></body></html>"""
    assert html_to_text(source) == (
        "Hello {{ firstName | there }},\n\nWe have news & more.\nLine two\n\n"
        "* One\n* Two link (https://x.example/a)\n\nA B\n\nhttps://x.example top"
    )


def test_golden_message() -> None:
    c = CampaignMessage(
        subject="Hello {{firstName|there}} — 20% off",
        html_body='<p>Hi {{firstName}}, <a href="https://shop.example/?who={{email}}">shop</a></p>'
        '<p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>',
        text_body="Hi {{firstName}},\n\nUnsubscribe: {{unsubscribeUrl}}",
        from_name="Acme Café",
        from_email="news@acme.example",
        base_url="https://herald.example/",
        boundary="=_golden",
    )
    assert c.links == ("https://shop.example/?who={{email}}",)
    r = Recipient("zoe@example.com", "Zoë", "Brown", "", "abc123")
    raw = c.render(r, message_id="<m1@acme.example>", date="Mon, 02 Mar 2026 09:30:00 +0000")
    expected = (
        "From: =?utf-8?b?QWNtZSBDYWbDqQ==?= <news@acme.example>\r\n"
        "To: =?utf-8?b?Wm/DqyBCcm93bg==?= <zoe@example.com>\r\n"
        "Subject: =?utf-8?b?SGVsbG8gWm/DqyDigJQgMjAlIG9mZg==?=\r\n"
        "Date: Mon, 02 Mar 2026 09:30:00 +0000\r\n"
        "Message-ID: <m1@acme.example>\r\n"
        "List-Unsubscribe: <https://herald.example/u/abc123>\r\n"
        "MIME-Version: 1.0\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Content-Type: multipart/alternative;\r\n"
        ' boundary="=_golden"\r\n'
        "\r\n"
        "--=_golden\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Hi=20Zo=C3=AB,\r\n"
        "\r\n"
        "Unsubscribe:=20https://herald.example/u/abc123\r\n"
        "\r\n"
        "--=_golden\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        '<p>Hi=20Zo=C3=AB, <a href=3D"https://herald.example/c/abc123=\r\n'
        '/1">shop</a></p><p><a href=3D"https://herald.example/u/abc123=\r\n'
        '">Unsubscribe</a></p><a href=3D"https://herald.example/c/abc123=\r\n'
        '/0" style=3D"display:none" aria-hidden=3D"true" tabindex=3D"-1"></a><img sr=\r\n'
        'c=3D"https://herald.example/t/abc123.gif=\r\n'
        '" width=3D"1" height=3D"1" alt=3D"" style=3D"display:block;border:0;width:1=\r\n'
        'px;height:1px">\r\n'
        "\r\n"
        "--=_golden--\r\n"
    )
    assert raw.decode("ascii") == expected
    parse(raw)


def stdlib_message(c: CampaignMessage, r: Recipient, raw: bytes) -> bytes:
    """The same message built with email.message.EmailMessage, for comparison."""
    ours = BytesParser(policy=policy.default).parsebytes(raw)
    text, body = parts(ours)
    message = EmailMessage()
    message["From"] = Address(ours["From"].addresses[0].display_name, addr_spec="news@acme.example")
    message["To"] = Address(" ".join(f"{r.first_name} {r.last_name}".split()), addr_spec=r.email)
    for name in ("Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        message[name] = str(ours[name])
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    return message.as_bytes(policy=policy.SMTP)


@pytest.mark.parametrize(
    "recipient",
    [
        ANN,
        Recipient("zoe@example.com", "Zoë", "Ångström", "Ünïcode GmbH", "k1"),
        Recipient("m@example.com", "محمد", "", "شركة", "k2"),
        Recipient("e@example.com", "🎉", "O'Brien", "<b>&co</b>", "k3"),
    ],
)
def test_same_result_as_the_standard_library(recipient: Recipient) -> None:
    c = campaign(subject="Héllo {{firstName|there}} — news for {{companyName}} 🚀" * 2)
    raw = c.render(recipient)
    ours, theirs = parse(raw), parse(stdlib_message(c, recipient, raw))
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert str(ours[name]) == str(theirs[name]), name
    assert ours["To"].addresses == theirs["To"].addresses
    assert parts(ours) == parts(theirs)


unicode = st.characters(blacklist_categories=("Cs",))
ascii_words = st.text(st.sampled_from("abc XYZ .,!?'\"()<>=@\\"), max_size=200)
names = st.one_of(st.text(unicode, max_size=80), st.text(st.sampled_from('ab ."\\<'), max_size=80))
literal = st.one_of(st.text(unicode, max_size=200), ascii_words)
placeholder = st.sampled_from(
    ["{{firstName}}", "{{ lastName | friend }}", "{{companyName|}}", "{{email}}"]
)


@st.composite
def template(draw: st.DrawFn, extra: tuple[str, ...] = ()) -> str:
    pieces = draw(st.lists(st.one_of(literal, placeholder, *map(st.just, extra)), max_size=6))
    return "".join(pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=names,
    last=names,
    company=names,
    subject=template(),
    html_body=template(("<b>", "</body>", "<style>p{color:red}</style>", "&amp;")),
    text_body=template(("{{unsubscribeUrl}}", "\r\n", "\r")),
    from_name=names,
)
def test_any_unicode_round_trips_without_defects(
    first: str,
    last: str,
    company: str,
    subject: str,
    html_body: str,
    text_body: str,
    from_name: str,
) -> None:
    try:
        c = campaign(subject=subject, html_body=html_body, text_body=text_body, from_name=from_name)
    except ValidationFailed:
        assume(False)  # the literals formed an unknown {{...}}, e.g. "{{" + "x}}"
        raise
    r = Recipient("someone@example.com", first, last, company, "tok")
    message = parse(c.render(r))

    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (
        " ".join(strip_controls(f"{first} {last}").split()),
        "someone@example.com",
    )
    (sender,) = message["From"].addresses
    assert sender.display_name == " ".join(strip_controls(from_name).split())
    expected_subject = Template.parse(subject, "subject", allowed=SUBJECT_FIELDS).render(
        values_for(r)
    )
    assert str(message["Subject"]) == strip_controls(expected_subject)
    assert parts(message) == expected_bodies(html_body, text_body, r)
    assert sorted(message.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe",
         "List-Unsubscribe-Post", "Content-Type"]
    )  # fmt: skip
    _, body = parts(message)
    assert body.count(f'src="{BASE}/t/tok.gif"') == 1
