"""Herald's fast composer against the standard library: every personalised message parses
with zero defects and, once parsed, equals what ``email.message.EmailMessage`` builds from the
same campaign and recipient (headers decoded, MIME structure, decoded text and HTML), whatever
transfer encoding each side chose.

The reference below is written from the rules, not from Herald's code: placeholders merged
with a regular expression, values HTML-escaped in HTML, C0 controls (tab kept) and DEL removed
from contact values and from the subject, display names with whitespace runs collapsed and cut
at 720 UTF-8 bytes (compose._NAME_BYTES: a name is one encoded-word so that every reader
decodes it alike and its line stays under 998 octets). Only what compose adds to the templates
(CSS inlined, text part generated, unsubscribe footer, links rewritten, trap link and pixel) is
taken from
``compile_bodies``, whose output test_compose.py checks.
"""

from __future__ import annotations

import html
import itertools
import operator
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy
from email.charset import Charset
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from herald.errors import ValidationFailed
from herald.mail.compose import CampaignMessage, InvalidAddress, Recipient, compile_bodies
from herald.mail.compose import smtp_address as sendable_address

BASE = "https://herald.example"
NAME_BYTES = 720
PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
UTF8 = Charset("utf-8")
LINE_BOUNDARY = re.compile("[\x85\u2028\u2029]")  # str.splitlines() beyond C0 controls
CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # merge.py: removed from values and headers
# Domains as sent: an internationalized one in its UTS-46 ASCII form.
DOMAINS = {
    "example.com": "example.com",
    "acme.example": "acme.example",
    "müller.example": "xn--mller-kva.example",
    "bücher.example": "xn--bcher-kva.example",
    "例え.テスト": "xn--r8jz45g.xn--zckzah",
    "localhost": "localhost",
}


@dataclass(frozen=True)
class Campaign:
    subject: str
    html_body: str
    text_body: str
    from_name: str = "Acme News"
    from_email: str = "news@acme.example"

    def compile(self) -> CampaignMessage:
        return CampaignMessage(
            subject=self.subject,
            html_body=self.html_body,
            text_body=self.text_body,
            from_name=self.from_name,
            from_email=self.from_email,
            base_url=BASE,
        )


# --- the reference -------------------------------------------------------------------------


def ascii_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}@{DOMAINS[domain]}"


def display_name(name: str) -> str:
    collapsed = " ".join(CONTROLS.sub("", name).split())
    return collapsed.encode("utf-8")[:NAME_BYTES].decode("utf-8", "ignore")


def values_for(r: Recipient) -> dict[str, str]:
    return {
        "firstName": CONTROLS.sub("", r.first_name),
        "lastName": CONTROLS.sub("", r.last_name),
        "companyName": CONTROLS.sub("", r.company_name),
        "email": CONTROLS.sub("", r.email),
        "unsubscribeUrl": f"{BASE}/u/{r.token}",
        "trackingPixelUrl": f"{BASE}/t/{r.token}.gif",
        "trackedLinkBase": f"{BASE}/c/{r.token}",
    }


def merge(template: str, values: dict[str, str], *, in_html: bool) -> str:
    """``{{name}}`` / ``{{name|fallback}}``: the value, else the fallback (both trimmed).
    In HTML the value is escaped, and the fallback is unescaped once then escaped."""

    def one(match: re.Match[str]) -> str:
        name, _, fallback = match.group(1).partition("|")
        value, fallback = values[name.strip()], fallback.strip()
        if in_html:
            return html.escape(value) if value else html.escape(html.unescape(fallback))
        return value or fallback

    return PLACEHOLDER.sub(one, template)


@dataclass(frozen=True)
class Expected:
    from_name: str
    from_address: str
    to_name: str
    to_address: str
    subject: str
    unsubscribe: str
    text: str  # decoded, CRLF line endings as on the wire
    html: str


def expected(c: Campaign, r: Recipient) -> Expected:
    values = values_for(r)
    bodies = compile_bodies(c.html_body, c.text_body)
    html_source, text_source = bodies.html, bodies.text
    return Expected(
        from_name=display_name(c.from_name),
        from_address=ascii_address(c.from_email),
        to_name=display_name(f"{r.first_name} {r.last_name}"),
        to_address=ascii_address(r.email),
        subject=CONTROLS.sub("", merge(c.subject, values, in_html=False)),
        unsubscribe=f"<{values['unsubscribeUrl']}>",
        text=merge(text_source, values, in_html=False).replace("\n", "\r\n"),
        html=merge(html_source, values, in_html=True).replace("\n", "\r\n"),
    )


def stdlib_message(e: Expected) -> bytes:
    """The same message as EmailMessage builds it (policy.SMTP: CRLF, 78-column folding)."""
    message = EmailMessage(policy=policy.SMTP)
    set_address(message, "From", e.from_name, e.from_address)
    set_address(message, "To", e.to_name, e.to_address)
    if stdlib_folds_exactly(e.subject):
        message["Subject"] = e.subject
    else:
        words = UTF8.header_encode_lines(e.subject, itertools.chain([69], itertools.repeat(77)))
        message.set_raw("Subject", "\n ".join(word or "" for word in words))
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=e.from_address.rpartition("@")[2])
    message["List-Unsubscribe"] = e.unsubscribe
    message["MIME-Version"] = "1.0"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # MIMEPart, not add_alternative(): EmailMessage.set_content() would also put a
    # MIME-Version header into the HTML part.
    message.make_alternative()
    for content, subtype in ((e.text, "plain"), (e.html, "html")):
        part = MIMEPart(policy=policy.SMTP)
        part.set_content(content, subtype=subtype)
        message.attach(part)  # type: ignore[arg-type]  # typeshed: EmailMessage only
    return message.as_bytes(policy=policy.SMTP.clone(refold_source="none"))


def stdlib_folds_exactly(subject: str) -> bool:
    """Whether the stdlib's header folder writes ``subject`` so that it decodes unchanged.

    Not for text it must fold: it loses whitespace at its fold points and between the
    encoded-words it makes; nor for leading or trailing whitespace, which it writes bare
    (unfolding drops it); nor for an "=?...?=" lookalike, which it writes as is (a reader
    decodes it); and its header API refuses what str.splitlines() breaks at (U+0085,
    U+2028, U+2029), which RFC 2047 allows inside an encoded-word (Herald keeps them there,
    as typed: tests/security/test_header_injection.py). For those the reference takes the
    stdlib's own RFC 2047 encoder (Charset.header_encode_lines) and writes its words as is.
    """
    if "=?" in subject or LINE_BOUNDARY.search(subject) or subject != subject.strip(" \t"):
        return False
    header = policy.SMTP.header_factory("Subject", subject)
    return header.fold(policy=policy.SMTP).count("\r\n") == 1


def set_address(message: EmailMessage, header: str, name: str, address: str) -> None:
    """The stdlib's Address when the header fits one line; past that its folder is not
    exact (a word longer than a line even yields an empty line, ending the header block;
    several encoded-words decode with spaces between them in its own parser, RFC 2047
    readers drop them), so the reference writes the name unfolded as the stdlib formats it
    (ONE encoded-word when not ASCII, as Herald does), with the address on the next line.
    It also writes an "=?...?=" lookalike in a name as is: that one always gets a word."""
    shown = str(Address(name, addr_spec=address)).removesuffix(f"<{address}>").rstrip()
    word = UTF8.header_encode(name)
    if "=?" in name or not name.isascii():
        shown = word
    if len(f"{header}: {shown} <{address}>") <= 78 and "=?" not in name:
        message[header] = Address(name, addr_spec=address)
    elif not name:
        message.set_raw(header, address)
    else:
        message.set_raw(header, f"{shown}\n <{address}>")


# --- the comparison ------------------------------------------------------------------------


def check_wire(raw: bytes) -> None:
    """Every line ends with CRLF (no bare CR or LF) and is at most 998 octets."""
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    assert max(len(line) for line in lines) <= 998


@dataclass
class Reading:
    """What a reader of the message sees, transfer encodings and header folding undone
    (each header parsed once: the stdlib's header parser is most of this test's time)."""

    structure: list[tuple[str, str | None, list[str]]]
    headers: dict[str, object]
    text: str
    html: str
    encodings: list[str]
    defects: list[object]


def read(raw: bytes) -> Reading:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    structure, contents, encodings = [], [], []
    defects: list[object] = []
    headers: dict[str, object] = {}
    for part in message.walk():
        fields = dict(part.items())
        assert len(fields) == len(part), "a header appears twice"
        defects += part.defects + [(n, v.defects) for n, v in fields.items() if v.defects]
        content_type = fields["Content-Type"]
        structure.append(
            (content_type.content_type, content_type.params.get("charset"), sorted(fields))
        )
        if part is message:
            headers = fields
        else:
            contents.append(part.get_content())
            encodings.append(str(fields["Content-Transfer-Encoding"]))
    (sender,) = headers["From"].addresses  # type: ignore[attr-defined]
    (to,) = headers["To"].addresses  # type: ignore[attr-defined]
    text, html_content = contents
    return Reading(
        structure=structure,
        headers={
            "From": (sender.display_name, sender.addr_spec),
            "To": (to.display_name, to.addr_spec),
            **{
                name: str(headers[name])
                for name in ("Subject", "List-Unsubscribe", "List-Unsubscribe-Post")
            },
            "MIME-Version": str(headers["MIME-Version"]),
            "Date": headers["Date"],
            "Message-ID": str(headers["Message-ID"]),
        },
        text=text,
        html=html_content,
        encodings=encodings,
        defects=defects,
    )


def assert_exact(c: Campaign, r: Recipient) -> None:
    raw = c.compile().render(r)
    check_wire(raw)
    ours = read(raw)
    assert ours.defects == []
    e = expected(c, r)
    theirs = read(stdlib_message(e))

    assert ours.structure == theirs.structure
    assert ours.structure[0][0] == "multipart/alternative"
    assert set(ours.encodings) <= {"quoted-printable", "base64"}
    want = {
        "From": (e.from_name, e.from_address),
        "To": (e.to_name, e.to_address),
        "Subject": e.subject,
        "List-Unsubscribe": e.unsubscribe,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "MIME-Version": "1.0",
    }
    for key, value in want.items():
        assert (key, ours.headers[key]) == (key, value)
        assert (key, theirs.headers[key]) == (key, value)
    assert ours.text == theirs.text == e.text
    assert ours.html == theirs.html == e.html
    # Per message: present once and well-formed, never compared by value.
    date = ours.headers["Date"].datetime  # type: ignore[attr-defined]
    assert date is not None and date.tzinfo is not None
    domain = re.escape(e.from_address.rpartition("@")[2])
    assert re.fullmatch(rf"<[0-9a-f]{{32}}@{domain}>", str(ours.headers["Message-ID"]))


# --- golden cases --------------------------------------------------------------------------

LONG_ASCII = "word " * 230 + "end"  # one line of 1,153 octets
LONG_ACCENTED = "é" * 600  # one line of 1,200 octets
TRICKY_TEXT = (
    "Hello {{firstName|there}},\r\n"
    ".\n"
    ".starts with a dot\n"
    "=3D is not an escape, = neither\n"
    "From the desk of {{companyName|us}}\n"
    "trailing spaces   \n"
    "trailing tab\t\r"
    f"{LONG_ASCII}\n"
    f"{LONG_ACCENTED}\n"
    "last line without newline"
)
CAMPAIGNS = {
    "ascii": Campaign(
        subject="News for {{companyName|you}}, {{firstName|friend}}",
        html_body="<p>Hi {{firstName|there}},</p>\n<p>Plain news from {{companyName}}.</p>",
        text_body="Hi {{firstName|there}},\n\nPlain news from {{companyName}}.\n",
    ),
    "accented": Campaign(
        subject="Réduction de 20 % pour {{firstName|vous}} — aujourd'hui 🌷",
        html_body=(
            "<html><head><style>p { color: #333333 }</style></head><body>"
            "<h1>Bonjour {{ firstName | cher client }}</h1>"
            "<p>Café, crème brûlée &amp; co pour {{companyName|Société}}.</p></body></html>"
        ),
        text_body="",  # generated from the HTML
        from_name="Acme Café",
    ),
    "cyrillic": Campaign(  # mostly non-ASCII: Herald sends both parts in base64
        subject="Привет, {{firstName}}!",
        html_body="<p>" + "Здравствуйте, {{firstName|друг}}! " * 40 + "</p>",
        text_body="Привет, {{firstName}}! " * 40 + "\nВторая строка",  # noqa: RUF001
        from_name="Новости",
    ),
    "tricky-lines": Campaign(
        subject="=?utf-8?q?not_an_encoded_word?= for {{lastName|you}}",
        html_body=(
            "<p>{{firstName}}</p>\n.\n=\nFrom here   \n<pre>"
            + LONG_ASCII
            + "</pre>\r\n<p>"
            + LONG_ACCENTED
            + '</p><p><a href="{{unsubscribeUrl}}">Leave</a></p>'
        ),
        text_body=TRICKY_TEXT + "\nLeave: {{unsubscribeUrl}}",
        from_name='Acme "Best", Inc. <sales@evil.example>',
    ),
}
RECIPIENTS = {
    "ascii": Recipient("ann@example.com", "Ann", "Lee", "Acme & Co", "tok1"),
    "accented": Recipient("zoe@müller.example", "Zoë", "Ångström", "Ünïcode GmbH", "tok2"),
    "cjk": Recipient("li@example.com", "李", "小龙", "株式会社テスト", "tok3"),
    "arabic": Recipient("m@example.com", "محمد", "علي", "شركة", "tok4"),
    "hebrew": Recipient("d@example.com", "דוד", "כהן", "חברה בע״מ", "tok5"),
    "emoji": Recipient("e@example.com", "🎉 Party", "👨‍👩‍👧", "<b>&co</b>", "tok6"),
    "specials": Recipient(
        "o.brien+news@example.com", 'Bob "The Builder"', "O'Neil, Jr. <x@y>", 'a"b', "tok7"
    ),
    "encoded-word": Recipient("q@example.com", "=?utf-8?b?QQ==?=", "=?utf-8?q?B?=", "", "t8"),
    "empty": Recipient("nobody@example.com", "", "", "", "tok9"),
    "controls": Recipient("c@example.com", "Bob\r\nBcc: x@y", "\x00Lee\t ", "X\r\n\r\nY", "t10"),
    "long": Recipient("long@example.com", "Éloïse-" * 120, "Marie-" * 120, "Co " * 300, "t11"),
    "long-ascii": Recipient("a@localhost", "a" * 900, "b", "c" * 2000, "t12"),
    "idn": Recipient("x@例え.テスト", "Ünal", "", "", "t" * 200),
}


@pytest.mark.parametrize("campaign", list(CAMPAIGNS.values()), ids=list(CAMPAIGNS))
@pytest.mark.parametrize("recipient", list(RECIPIENTS.values()), ids=list(RECIPIENTS))
def test_each_message_equals_the_standard_librarys(
    campaign: Campaign, recipient: Recipient
) -> None:
    assert_exact(campaign, recipient)


def test_the_cases_cover_every_transfer_encoding() -> None:
    seen: set[str] = set()
    for c in CAMPAIGNS.values():
        for r in RECIPIENTS.values():
            for raw in (c.compile().render(r), stdlib_message(expected(c, r))):
                message = BytesParser(policy=policy.default).parsebytes(raw)
                seen.update(str(p["Content-Transfer-Encoding"]) for p in message.iter_parts())
    assert seen == {"7bit", "8bit", "quoted-printable", "base64"}  # 7bit, 8bit: stdlib only


@pytest.mark.parametrize(
    "email",
    ["a..b@example.com", ".a@example.com", "a.@example.com", "a@x..example", "a@.x", "a@x."],
)
def test_an_address_that_is_not_a_dot_atom_is_refused(email: str) -> None:
    # The stdlib parser reads these as defects (or as no address at all).
    with pytest.raises(InvalidAddress):
        CAMPAIGNS["ascii"].compile().render(Recipient(email, "", "", "", "t"))
    with pytest.raises(InvalidAddress):
        replace(CAMPAIGNS["ascii"], from_email=email).compile()


# --- any input -----------------------------------------------------------------------------

wide = st.characters(exclude_categories=["Cs"])
hostile = st.sampled_from(
    ["\r", "\n", "\r\n", "\t", "\x00", "\x0b", "\x7f", "\x85", "\u2028", '"', "\\", "<", ">",
     ",", ";", "@", "=?", "?=", "=?utf-8?b?QQ==?=", "=?utf-8?q?a_b?=", "  ", "é", "李", "🎉"]
)  # fmt: skip
text_pieces = st.one_of(st.text(wide, max_size=40), hostile)
names = st.one_of(
    st.lists(text_pieces, max_size=6).map("".join),
    st.builds(  # past the 720-byte cut
        operator.mul,
        st.text(st.sampled_from("aé李 -"), min_size=5, max_size=20),
        st.integers(30, 90),
    ),
)
atext = st.text(st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~"), min_size=1, max_size=12)
dot_atoms = st.lists(atext, min_size=1, max_size=3).map(".".join)
local_parts = st.integers(0, 7).flatmap(  # one in 8 from wide unicode: mostly assumed away
    lambda n: st.text(wide, min_size=1, max_size=12) if n == 0 else dot_atoms
)
placeholders = st.sampled_from(
    ["{{firstName}}", "{{ lastName | friend }}", "{{companyName|}}", "{{email}}",
     "{{firstName|Zoë &amp; co}}", "{{companyName|<b>you</b>}}"]
)  # fmt: skip
lines = st.sampled_from(
    ["\n", "\r\n", "\r", "\n.\n", "\n.", "\n=", "\nFrom me\n", "   \n", "\t\n", "=3D", "=\n",
     "x" * 997 + "\n", "y" * 1200, "é" * 700, "word " * 250]
)  # fmt: skip


@st.composite
def templates(draw: st.DrawFn, *extra: str) -> str:
    extras = [st.just(x) for x in extra]
    return "".join(draw(st.lists(st.one_of(text_pieces, placeholders, lines, *extras), max_size=8)))


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    first=names,
    last=names,
    company=names,
    local=local_parts,
    domain=st.sampled_from(sorted(DOMAINS)),
    subject=templates(),
    html_body=templates("<b>", "</body>", "<style>p{color:red}</style>", "&amp;", "<p>"),
    text_body=templates("{{unsubscribeUrl}}"),
    from_name=names,
    token=st.text(st.sampled_from("abcXYZ019-_"), min_size=1, max_size=200),
)
def test_any_input_equals_the_standard_librarys(
    first: str,
    last: str,
    company: str,
    local: str,
    domain: str,
    subject: str,
    html_body: str,
    text_body: str,
    from_name: str,
    token: str,
) -> None:
    email = f"{local}@{domain}"
    try:
        sendable_address(email)  # what the worker requires before it sends
        campaign = Campaign(subject, html_body, text_body, from_name)
        campaign.compile()
    except (InvalidAddress, ValidationFailed):
        assume(False)  # an unsendable address, or literals that formed an unknown {{...}}
        raise
    assert_exact(campaign, Recipient(email, first, last, company, token))
