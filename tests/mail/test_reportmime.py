"""herald.mail.reportmime: a received message read without the standard parser's compile
of each boundary must be the very tree ``email.message_from_bytes`` builds, whatever its
shape (the readers of reports, and flufl.bounce, walk that tree)."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

from herald.mail import reportmime
from herald.mail.reportmime import read_message
from tests.bounces.hostile import nested, with_parts

SAMPLES = sorted((Path(__file__).parents[1] / "bounces" / "samples").glob("*.eml"))


def same_tree(a: Message, b: Message) -> bool:
    if (a.items(), a.preamble, a.epilogue, a.get_default_type()) != (
        b.items(),
        b.preamble,
        b.epilogue,
        b.get_default_type(),
    ):
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
}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_the_tree_the_standard_parser_builds(path):
    for raw in variants(path.read_bytes()):
        assert same_tree(read_message(raw), message_from_bytes(raw))


@pytest.mark.parametrize("name", SHAPES)
def test_every_shape_is_the_tree_the_standard_parser_builds(name):
    for raw in variants(SHAPES[name]):
        assert same_tree(read_message(raw), message_from_bytes(raw))


def test_a_plain_report_is_split_without_compiling_its_boundary(monkeypatch):
    # the point of the module: the standard parser reads the headers and the parts only
    calls = []
    monkeypatch.setattr(reportmime, "message_from_bytes", lambda raw: calls.append(raw))
    message = read_message(SHAPES["plain report"])
    assert calls == []
    assert [p.get_content_type() for p in message.walk()][:4] == [
        "multipart/report",
        "text/plain",
        "message/delivery-status",
        "text/plain",  # the status's first block of fields
    ]
