"""herald.mail.reportmime: a received message read without the standard parser's compile
of each boundary must be the very tree ``email.message_from_bytes`` builds, whatever its
shape (the readers of reports, and flufl.bounce, walk that tree)."""

from __future__ import annotations

import io
import random
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser, Parser
from pathlib import Path

import pytest

from herald.mail import reportmime
from herald.mail.reportmime import read_headers, read_message
from tests.bounces.hostile import nested, with_parts

SAMPLES = sorted((Path(__file__).parents[1] / "bounces" / "samples").glob("*.eml"))


def same_tree(a: Message, b: Message) -> bool:
    if (a.items(), a.preamble, a.epilogue, a.get_default_type(), a.get_unixfrom()) != (
        b.items(),
        b.preamble,
        b.epilogue,
        b.get_default_type(),
        b.get_unixfrom(),
    ) or [type(d) for d in a.defects] != [type(d) for d in b.defects]:
        return False
    pa, pb = a.get_payload(), b.get_payload()
    if isinstance(pa, list) and isinstance(pb, list):
        return len(pa) == len(pb) and all(same_tree(x, y) for x, y in zip(pa, pb, strict=True))
    return pa == pb


def variants(raw: bytes) -> list[bytes]:
    lf = raw.replace(b"\r\n", b"\n")
    return [lf, lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")]


def report(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    head = b'From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; boundary="q.1/x"\n\n'
    return head + preamble + b"".join(b"--q.1/x\n" + p for p in parts) + b"--q.1/x--\n" + epilogue


TEXT = b"Content-Type: text/plain\n\nuser@x.example: user unknown\n"
STATUS = (
    b"Content-Type: message/delivery-status\n\n"
    b"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n"
)
ORIGINAL = b"Content-Type: message/rfc822\n\nFrom: a@b\nMessage-ID: <1@b>\n\nHello\n"
INNER = (
    b"Content-Type: multipart/alternative; boundary=in\n\n--in\nContent-Type: text/plain\n\n"
    b"hi\n\n--in\nContent-Type: text/html\n\n<p>hi</p>\n--in--\n\n"
)
SHAPES = {
    "plain report": report(TEXT, STATUS, ORIGINAL),
    "preamble and epilogue": report(TEXT, STATUS, preamble=b"MIME.\n\n", epilogue=b"\nafter\n"),
    "blanks after the boundary": report(TEXT).replace(b"--q.1/x\n", b"--q.1/x \t\n", 1),
    "a look-alike boundary line": report(TEXT + b"--q.1/xy\nmore\n--q.1/x-\nmore\n", STATUS),
    "a nested multipart": report(INNER, STATUS),
    "a quoted original with parts": report(TEXT, b"Content-Type: message/rfc822\n\n" + INNER),
    "no close line": report(TEXT).replace(b"--q.1/x--\n", b""),
    "no start line": report().replace(b"--q.1/x--\n", b"just text\n"),
    "boundary lines in a row": report(TEXT, b"", STATUS),
    "a digest": report(ORIGINAL).replace(b"multipart/report", b"multipart/digest"),
    "no blank line after the headers": report(TEXT).replace(b"\n\n--q", b"\nbody\n--q", 1),
    "no boundary": b"Content-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n",
    "not multipart": b"Subject: out of office\n\nBack on Monday.\n",
    "headers only": b"Subject: nothing else",
    "empty": b"",
    "nested deep": nested(20),
    "many parts": with_parts(150),
    "8-bit text": report(b"Content-Type: text/plain; charset=latin-1\n\nd\xe9j\xe0 vu\n", STATUS),
    # the header blocks read without the parser, and their odd cases left to it
    "8-bit fields": report(b"Content-Type: text/plain\nX-Name: J\xe9r\xf4me\n\nhi\n", STATUS),
    "folded fields": report(b"Content-Type: text/plain;\n\tcharset=us-ascii\n \n\nhi\n"),
    "a part that is fields only": report(b"Content-Type: text/plain\n", STATUS),
    "a part with no fields": report(b"\njust text\n", STATUS),
    "a part starting with a folded line": report(b" folded\nContent-Type: text/plain\n\nhi\n"),
    "a From line in a part": report(b"From someone\nContent-Type: text/plain\n\nhi\n"),
    "a field without a name": report(b": nameless\nContent-Type: text/plain\n\nhi\n"),
    "a part without its blank line": report(b"Content-Type: text/plain\nhi there\n", STATUS),
    "status blocks with blank lines around": report(
        b"Content-Type: message/delivery-status\n\n\nReporting-MTA: dns; x\n\n\n"
        b"Final-Recipient: rfc822; a@b\n\tfolded\nAction: failed\n\n\n"
    ),
    "an empty status": report(b"Content-Type: message/delivery-status\n\n"),
    "a status of many blocks": report(
        b"Content-Type: message/delivery-status\n\n" + b"A: b\n\n\n" * 300, STATUS
    ),
    "a status of fields only": report(b"Content-Type: message/delivery-status\n"),
    "a status block starting folded": report(
        b"Content-Type: message/delivery-status\n\nReporting-MTA: x\n\n folded\nAction: x\n"
    ),
    "a status block with text": report(
        b"Content-Type: message/delivery-status\n\nReporting-MTA: x\nnot a field\n\nA: b\n"
    ),
    "a status block naming a type": report(
        b"Content-Type: message/delivery-status\n\nContent-Type: message/rfc822\n\n"
        b"From: a@b\n\nhi\n"
    ),
    "a global status": report(
        STATUS.replace(b"message/delivery-status", b"message/global-delivery-status")
    ),
    "headers ending with a From line": b"Subject: x\nFrom nobody\n",
}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_the_tree_the_standard_parser_builds(path):
    for raw in variants(path.read_bytes()):
        assert same_tree(read_message(raw), message_from_bytes(raw))


@pytest.mark.parametrize("name", SHAPES)
def test_every_shape_is_the_tree_the_standard_parser_builds(name):
    for raw in variants(SHAPES[name]):
        assert same_tree(read_message(raw), message_from_bytes(raw))


def test_a_plain_report_is_read_without_the_standard_parser(monkeypatch):
    # the point of the module: no compile of the boundary, no line-by-line parser for a
    # plain header block; the quoted original (message/rfc822) alone is the parser's
    calls = []
    monkeypatch.setattr(reportmime, "message_from_bytes", lambda raw: calls.append(raw))
    parser = reportmime.Parser
    monkeypatch.setattr(reportmime, "Parser", lambda: calls.append("parser") or parser())
    message = read_message(SHAPES["plain report"])
    assert calls == ["parser"]
    assert read_message(report(TEXT, STATUS)) and calls == ["parser"]
    assert [p.get_content_type() for p in message.walk()][:4] == [
        "multipart/report",
        "text/plain",
        "message/delivery-status",
        "text/plain",  # the status's first block of fields
    ]


# Lines a header block can be made of: fields, folded lines, blank lines, the parser's odd
# cases (a From line, a nameless field, text), and types that make a part be read as parts.
LINES = [
    "Subject: hi",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Type: message/delivery-status",
    "Content-Type: message/rfc822",
    "Content-Type: multipart/mixed; boundary=zz",
    "Content-Type: text/rfc822-headers",
    "Action: failed",
    "X-8bit: caf\udce9",
    "\tfolded value",
    " ",
    "",
    "",
    "From nobody",
    ": nameless",
    "plain text, not a field",
    "--zz",
    "Name:",
]


def generated(seed: int) -> list[str]:
    rng = random.Random(seed)
    ending = rng.choice(["\n", "\r\n", "\r"])
    lines = [rng.choice(LINES) + ending for _ in range(rng.randint(0, 12))]
    if lines and rng.random() < 0.3:
        lines[-1] = lines[-1].rstrip("\r\n")  # no line end at the very end
    return lines


@pytest.mark.parametrize("seed", range(400))
def test_a_generated_block_is_the_message_the_standard_parser_makes(seed):
    text = "".join(generated(seed))
    assert same_tree(read_headers(text), HeaderParser().parsestr(text))
    whole = text.encode("utf-8", "surrogateescape")  # as a message of its own
    assert same_tree(read_message(whole), message_from_bytes(whole))
    raw = report(text.encode("utf-8", "surrogateescape"), STATUS)
    for variant in variants(raw):
        assert same_tree(read_message(variant), message_from_bytes(variant))
    part = reportmime._plain(io.StringIO(text, newline="").readlines())
    if part is not None:  # read without the parser: the parser's very message
        assert same_tree(part, Parser().parsestr(text))
