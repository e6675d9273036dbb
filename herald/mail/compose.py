"""The RFC 5322 message a campaign sends to one recipient, as bytes ready for SMTP.

A campaign is compiled once (templates parsed, CSS inlined, text part generated, headers and
MIME skeleton precomputed); rendering for a recipient then only merges values and encodes
them with C codecs. ``email.message.EmailMessage`` gives the same result ~100x slower.
"""

from __future__ import annotations

import re
import secrets
import time
from binascii import b2a_base64, b2a_qp
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import css_inline
import idna

from herald.mail.htmltext import html_to_text
from herald.mail.links import LINK_BASE_FIELD, TRAP_ANCHOR, rewrite_links
from herald.mail.merge import (
    BODY_FIELDS,
    SUBJECT_FIELDS,
    Placeholder,
    Template,
    strip_controls,
)

PIXEL_FIELD = "trackingPixelUrl"  # internal: never accepted from an author
_PIXEL = (
    '<img src="{{' + PIXEL_FIELD + '}}" width="1" height="1" alt="" '
    'style="display:block;border:0;width:1px;height:1px">'
)
_HTML_FOOTER = (
    '<p style="font-size:12px;line-height:18px;color:#666666;text-align:center;margin:24px 0">'
    'Don\'t want these emails? <a href="{{unsubscribeUrl}}" style="color:#666666">'
    "Unsubscribe</a>.</p>"
)
_TEXT_FOOTER = "\n\nUnsubscribe: {{unsubscribeUrl}}\n"

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_NEWLINES = re.compile(r"\r\n?")
_BASE_URL = re.compile(r"https?://[!#-;=?-\[\]_a-z~]+", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,200}")
# RFC 5322 dot-atom "@" dot-atom (non-ASCII allowed, RFC 6532): no special character and no
# empty, leading or trailing label (the stdlib parser reads "a..b@x" as a defect, "a@x." as
# no address at all).
_ATOM = r'[^\x00-\x20\x7f<>()\[\],;:\\"@.]+'
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_DOMAIN = re.compile(_DOT_ATOM)
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_NOT_ATOM_SAFE = re.compile(r"[^\x20-\x7e]|=\?")
_LIST_ID_PART = re.compile(r"[0-9A-Za-z-]{1,64}")

_WORD_BYTES = 42  # 56 base64 chars: an encoded-word line stays within 78 characters
_NAME_BYTES = 720  # a display name is one encoded-word (see _phrase); longer is cut
_LINE = 78


class InvalidAddress(ValueError):
    """An address that cannot be put in a header: not ``dot-atom@dot-atom`` (control
    characters, brackets, quotes, empty or doubled dots), or a bad internationalized domain."""


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    first_name: str
    last_name: str
    company_name: str
    token: str  # the send's unsubscribe/open token, URL-safe


@dataclass(frozen=True, slots=True)
class CompiledBodies:
    """A campaign's final HTML and text templates, and its tracked links' URLs in order
    (link n is ``links[n - 1]``; empty without click tracking)."""

    html: str
    text: str
    links: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListHeaders:
    """What names a campaign's list in its messages: ``Feedback-ID`` (Gmail's feedback loop
    reports spam rates per campaign with it) and ``List-Id`` (RFC 2919; list headers without
    one make SpamAssassin's LIST_PARTIAL_SHORT_MSG fire)."""

    campaign_id: str
    org_id: str
    org_name: str

    def lines(self, domain: str) -> str:
        for value in (self.campaign_id, self.org_id):
            if not _LIST_ID_PART.fullmatch(value):
                raise ValueError("campaign and org ids must be letters, digits and '-'")
        list_id = f"{self.org_id.replace('-', '')}.{domain}"
        name = _display_name(self.org_name)
        phrase = f"{_phrase(name)} " if name else ""
        return (
            f"Feedback-ID: {self.campaign_id}:{self.org_id}:herald\r\n"
            f"List-Id: {phrase}<{list_id}>\r\n"
        )


class CampaignMessage:
    """One campaign compiled for sending; :meth:`render` is safe to call from many threads.

    ``track_opens`` adds the pixel; ``track_clicks`` rewrites the HTML's http(s) links to
    Herald's redirect; either adds the hidden trap link. Both off: links as written.

    Raises ValidationFailed for an unknown placeholder (naming subject/htmlBody/textBody),
    InvalidAddress for an unusable ``from_email`` and ValueError for a bad ``base_url``.
    """

    def __init__(
        self,
        *,
        subject: str,
        html_body: str,
        text_body: str,
        from_name: str,
        from_email: str,
        base_url: str,
        boundary: str | None = None,
        track_opens: bool = True,
        track_clicks: bool = True,
        list_headers: ListHeaders | None = None,
    ) -> None:
        base_url = base_url.rstrip("/")
        if not _BASE_URL.fullmatch(base_url):
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        self._base_url = base_url
        self._subject = Template.parse(subject, "subject", allowed=SUBJECT_FIELDS)
        bodies = compile_bodies(
            html_body, text_body, track_opens=track_opens, track_clicks=track_clicks
        )
        self.links = bodies.links
        html_template = Template.parse(
            bodies.html, "htmlBody", allowed=(*BODY_FIELDS, PIXEL_FIELD, LINK_BASE_FIELD)
        )
        self._html = _EncodedBody(html_template, escape_html=True)
        self._text = _EncodedBody(Template.parse(bodies.text, "textBody"), escape_html=False)

        self._from_email = _ascii_domain(from_email)
        self._domain = self._from_email.rpartition("@")[2]
        self._from_line = _address_line("From", _display_name(from_name), self._from_email)
        if boundary is None:
            boundary = "=_" + secrets.token_hex(16)
        elif not re.fullmatch(r"=_[0-9A-Za-z'()+_,./:?-]{1,68}", boundary):
            raise ValueError("boundary must start with '=_' (it then cannot occur in QP/base64)")
        self._head_tail = (
            (list_headers.lines(self._domain) if list_headers else "") + "MIME-Version: 1.0\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\n{_part_headers('plain', self._text.base64)}"
        ).encode("ascii")
        self._middle = f"\r\n--{boundary}\r\n{_part_headers('html', self._html.base64)}".encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._date = (0, "")

    def envelope_from(self) -> str:
        """The sender for SMTP ``MAIL FROM`` (an internationalized domain in its ASCII form)."""
        return self._from_email

    @property
    def domain(self) -> str:
        """The sender's domain (ASCII): where Message-IDs are made."""
        return self._domain

    def new_message_id(self) -> str:
        return f"<{secrets.token_hex(16)}@{self._domain}>"

    def render(
        self, r: Recipient, *, message_id: str | None = None, date: str | None = None
    ) -> bytes:
        """The whole message, CRLF line endings, ending with CRLF.

        ``message_id`` is the full header value (``<...>``); a fresh one is made when None.
        Raises InvalidAddress for an unusable recipient address and ValueError for a token
        that is not URL-safe. A recipient whose address has a non-ASCII local part gets a
        UTF-8 ``To`` header (RFC 6532): the transport must then use SMTPUTF8.
        """
        if not _TOKEN.fullmatch(r.token):
            raise ValueError("the send token must be URL-safe (letters, digits, '-', '_')")
        if message_id is None:
            message_id = self.new_message_id()
        elif not _MESSAGE_ID.fullmatch(message_id):
            raise ValueError("message_id must be one <local@domain> value")
        if date is None:
            date = self._now()
        elif strip_controls(date) != date:
            raise ValueError("date must be one header line")
        unsubscribe_url = f"{self._base_url}/u/{r.token}"
        values = {
            "firstName": strip_controls(r.first_name),
            "lastName": strip_controls(r.last_name),
            "companyName": strip_controls(r.company_name),
            "email": strip_controls(r.email),
            "unsubscribeUrl": unsubscribe_url,
            PIXEL_FIELD: f"{self._base_url}/t/{r.token}.gif",
            LINK_BASE_FIELD: f"{self._base_url}/c/{r.token}",
        }
        to_name = _display_name(f"{r.first_name} {r.last_name}")
        head = (
            f"{self._from_line}"
            f"{_address_line('To', to_name, _ascii_domain(r.email))}"
            f"{_subject_line(self._subject.render(values, header=True))}"
            f"Date: {date}\r\n"
            f"Message-ID: {message_id}\r\n"
            f"List-Unsubscribe: <{unsubscribe_url}>\r\n"
        )
        return b"".join(
            (
                head.encode("utf-8"),
                self._head_tail,
                self._text.encode(values),
                self._middle,
                self._html.encode(values),
                self._tail,
            )
        )

    def _now(self) -> str:
        second = int(time.time())
        cached_second, text = self._date
        if cached_second != second:
            text = format_datetime(datetime.fromtimestamp(second, UTC))
            self._date = (second, text)
        return text


def text_message(
    *,
    subject: str,
    text: str,
    from_name: str,
    from_email: str,
    to: str,
    date: str | None = None,
) -> bytes:
    """A single plain-text message (the configuration's test message), its headers built and
    checked exactly as a campaign's are; InvalidAddress for an unusable address."""
    sender = _ascii_domain(from_email)
    body = _NEWLINES.sub("\n", text)
    if not body.endswith("\n"):
        body += "\n"
    encoded = _EncodedBody(Template(body, "text", (body,)), escape_html=False)
    if date is None:
        date = format_datetime(datetime.now(UTC))
    head = (
        f"{_address_line('From', _display_name(from_name), sender)}"
        f"{_address_line('To', '', _ascii_domain(to))}"
        f"{_subject_line(strip_controls(subject))}"
        f"Date: {date}\r\n"
        f"Message-ID: <{secrets.token_hex(16)}@{sender.rpartition('@')[2]}>\r\n"
        "MIME-Version: 1.0\r\n"
        f"{_part_headers('plain', encoded.base64)}"
    )
    data = encoded.encode({})
    return head.encode("utf-8") + data + (b"" if data.endswith(b"\r\n") else b"\r\n")


def compile_bodies(
    html_body: str, text_body: str, *, track_opens: bool = True, track_clicks: bool = True
) -> CompiledBodies:
    """The final HTML and text templates: CSS inlined, text generated when blank,
    unsubscribe link added when missing, links rewritten and the trap link and pixel placed
    as tracking asks, line endings normalized.

    Raises ValidationFailed for an unknown placeholder, also one that only appears once
    entities are decoded; the service can call it at save for the full check.
    """
    html_template = Template.parse(html_body, "htmlBody")
    source = html_body
    if "<style" in html_body.lower():
        source = css_inline.inline(html_body, keep_at_rules=True, load_remote_stylesheets=False)
        html_template = Template.parse(source, "htmlBody")
    if text_body.strip():
        text_template = Template.parse(text_body, "textBody")
    else:
        text_template = Template.parse(html_to_text(html_body), "htmlBody")

    text = _NEWLINES.sub("\n", text_template.source)
    if not text_template.uses("unsubscribeUrl"):
        text = text.rstrip("\n") + _TEXT_FOOTER
    if not text.endswith("\n"):
        text += "\n"

    links: tuple[str, ...] = ()
    if track_clicks:
        source, links = rewrite_links(source)
    addition = "" if html_template.uses("unsubscribeUrl") else _HTML_FOOTER
    if track_opens or track_clicks:
        addition += TRAP_ANCHOR
    if track_opens:
        addition += _PIXEL
    ends = list(_BODY_END.finditer(source))
    if ends:
        source = source[: ends[-1].start()] + addition + source[ends[-1].start() :]
    else:
        source += addition
    source = _NEWLINES.sub("\n", source)
    if not source.endswith("\n"):
        source += "\n"
    return CompiledBodies(source, text, links)


# Quoted-printable piece: encoded bytes (CRLF), first and last line lengths, several lines?
_Piece = tuple[bytes, int, int, bool]
_NOTHING: _Piece = (b"", 0, 0, False)
_QP_TOKEN = re.compile(rb"=[0-9A-F]{2}|=$|[^=]")  # an escape, a final soft break, a character


class _EncodedBody:
    """A body template with its literals encoded once; a message only encodes its values.

    Quoted-printable pieces are joined tracking the column, with a soft line break wherever
    the next piece would push a line past 76 characters (each piece's last line is at most
    75, so that "=" always fits). Mostly non-ASCII bodies go in base64 (QP triples such
    bytes), encoded whole.
    """

    def __init__(self, template: Template, *, escape_html: bool) -> None:
        data = template.source.encode("utf-8")
        self.base64 = len(data) - len(data.decode("ascii", "ignore")) > len(data) // 6
        self._template = template
        self._escape = escape_html
        # (placeholder, the literal after it, that literal placed after a value of several
        # lines ending at column c: {c: (bytes, column after)}): one step per placeholder,
        # as a message's cost is per step. A tracked link's value (its send's /c/ URL) is
        # always of several lines ending at the same column, so its number and text after
        # it are placed once per campaign, not per message.
        self._steps: list[tuple[Placeholder | None, _Piece, dict[int, tuple[bytes, int]]]] = []
        for segment in template.segments:
            if isinstance(segment, Placeholder):
                self._steps.append((segment, _NOTHING, {}))
            elif self._steps and self._steps[-1][1] is _NOTHING:
                self._steps[-1] = (self._steps[-1][0], _qp_piece(segment), {})
            else:
                self._steps.append((None, _qp_piece(segment), {}))

    def encode(self, values: Mapping[str, str]) -> bytes:
        """Values must be free of CR and LF; literals have LF line endings."""
        if self.base64:
            text = self._template.render(values, escape_html=self._escape)
            data = b2a_base64(text.replace("\n", "\r\n").encode("utf-8"), newline=False)
            return b"\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))
        out: list[bytes] = []
        append = out.append
        column = 0
        merged: dict[Placeholder, _Piece] = {}
        for placeholder, literal, placed in self._steps:
            if placeholder is not None:
                data, first, last, several = merged.get(placeholder) or self._merge(
                    placeholder, values, merged
                )
                if column + first > (76 if several else 75):
                    append(b"=\r\n")
                    column = 0
                append(data)
                if several:
                    tail = placed.get(last) or placed.setdefault(last, _placed(literal, last))
                    append(tail[0])
                    column = tail[1]
                    continue
                column += first
            data, first, last, several = literal
            if column + first > (76 if several else 75):
                append(b"=\r\n")
                column = 0
            append(data)
            column = last if several else column + first
        return b"".join(out)

    def _merge(
        self, placeholder: Placeholder, values: Mapping[str, str], merged: dict[Placeholder, _Piece]
    ) -> _Piece:
        value = placeholder.merge(values, escape_html=self._escape)
        piece = merged[placeholder] = _qp_piece(value) if value else _NOTHING
        return piece


def _qp_piece(text: str) -> _Piece:
    # printable ASCII but "=" and whitespace: quoted-printable keeps it as it is
    if text.isascii() and text.isprintable() and "=" not in text and " " not in text:
        return _folded(text.encode("ascii"))
    encoded = b2a_qp(text.encode("utf-8"), istext=True)
    if len(encoded) > 76:
        encoded = b"\n".join(_refold(line) for line in encoded.split(b"\n"))
    last_start = encoded.rfind(b"\n") + 1
    if len(encoded) - last_start > 75:
        # b2a_qp lets the last line reach 76 characters; a joined "=" must still fit.
        cut = len(encoded) - (3 if encoded[-3:-2] == b"=" else 1)
        encoded = encoded[:cut] + b"=\n" + encoded[cut:]
        last_start = cut + 2
    first_end = encoded.find(b"\n")
    if first_end < 0:
        return encoded, len(encoded), len(encoded), False
    return encoded.replace(b"\n", b"\r\n"), first_end, len(encoded) - last_start, True


def _placed(piece: _Piece, column: int) -> tuple[bytes, int]:
    """A piece's bytes (a soft line break first, if it does not fit) and the column after
    it, placed at ``column``: what encode() does for one piece."""
    data, first, last, several = piece
    if column + first > (76 if several else 75):
        return b"=\r\n" + data, last if several else first
    return data, last if several else column + first


def _folded(data: bytes) -> _Piece:
    """Text that quoted-printable keeps as it is (a send's URLs), cut into lines of 75 and
    a soft line break: the same as b2a_qp, without its second look at each line."""
    size = len(data)
    if size <= 75:
        return data, size, size, False
    if size <= 150:  # a send's URL: two lines
        return data[:75] + b"=\r\n" + data[75:], 76, size - 75, True
    lines = [data[i : i + 75] for i in range(0, size, 75)]
    return b"=\r\n".join(lines), 76, len(lines[-1]), True


def _refold(line: bytes) -> bytes:
    """b2a_qp can emit a 77-character line (whitespace encoded before a line break)."""
    if len(line) <= 76:
        return line
    lines = []
    current = b""
    for token in _QP_TOKEN.findall(line):
        if token != b"=" and len(current) + len(token) > 75:
            lines.append(current + b"=")
            current = b""
        current += token
    lines.append(current)
    return b"\n".join(lines)


def _part_headers(subtype: str, base64: bool) -> str:
    encoding = "base64" if base64 else "quoted-printable"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )


def _display_name(name: str) -> str:
    return " ".join(strip_controls(name).split())


def smtp_address(address: str) -> str:
    """The form of ``address`` for SMTP's MAIL FROM and RCPT TO: punycode domain, and an
    ASCII local part (we do not speak SMTPUTF8), else InvalidAddress."""
    ascii_address = _ascii_domain(address)
    if not ascii_address.isascii():
        raise InvalidAddress(f"{address!r} has non-ASCII characters before the @")
    return ascii_address


def _ascii_domain(address: str) -> str:
    """``address`` with an internationalized domain in its ASCII (punycode) form."""
    if not _ADDRESS.fullmatch(address):
        raise InvalidAddress(f"{address!r} cannot be used as an email address")
    if address.isascii():
        return address
    local, _, domain = address.partition("@")
    if domain.isascii():
        return address
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidAddress(f"{address!r} has an invalid domain: {exc}") from None
    if not _DOMAIN.fullmatch(ascii_domain):  # UTS-46 maps "。" to ".": "x。" ends "x."
        raise InvalidAddress(f"{address!r} has an empty label in its domain")
    return f"{local}@{ascii_domain}"


def _address_line(label: str, name: str, address: str) -> str:
    if not name:
        return f"{label}: {address}\r\n"
    phrase = _phrase(name)
    line = f"{label}: {phrase} <{address}>"
    if len(line) <= _LINE:
        return line + "\r\n"
    return f"{label}: {phrase}\r\n <{address}>\r\n"


def _phrase(name: str) -> str:
    """A display name as a quoted-string, or else as ONE encoded-word.

    Python's parser keeps the space between adjacent encoded-words in a phrase while RFC 2047
    readers drop it, so only a single word decodes the same everywhere; it may exceed 75
    characters, and names past _NAME_BYTES bytes are cut.
    """
    if len(name) <= _NAME_BYTES and not _NOT_ATOM_SAFE.search(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    data = name.encode("utf-8")
    if len(data) > _NAME_BYTES:
        data = data[: _char_end(data, _NAME_BYTES)]
    return "=?utf-8?b?" + b2a_base64(data, newline=False).decode("ascii") + "?="


def _subject_line(subject: str) -> str:
    if not subject:
        return "Subject:\r\n"
    if (
        not _NOT_ATOM_SAFE.search(subject)
        and subject[0] != " "
        and subject[-1] != " "
        and "  " not in subject
    ):
        folded = _fold_words(subject)
        if folded is not None:
            return folded
    data = subject.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = _char_end(data, start + _WORD_BYTES)
        chunk = b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start = end
    return "Subject: " + "\r\n ".join(words) + "\r\n"


def _fold_words(subject: str) -> str | None:
    """Printable ASCII folded at spaces into lines of at most 78 characters, or None when a
    single word would not fit a line (then it is sent encoded)."""
    first, *words = subject.split(" ")
    line = "Subject: " + first
    if len(line) > _LINE:
        return None
    lines = []
    for word in words:
        if len(line) + 1 + len(word) <= _LINE:
            line += " " + word
        elif len(word) + 1 > _LINE:
            return None
        else:
            lines.append(line)
            line = " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _char_end(data: bytes, limit: int) -> int:
    """The largest cut at or below ``limit`` that does not split a UTF-8 character."""
    if limit >= len(data):
        return len(data)
    while limit > 0 and data[limit] & 0xC0 == 0x80:
        limit -= 1
    return limit
