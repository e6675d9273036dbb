"""The receiver's quick reading of MAIL and RCPT paths (herald.bounces.receiver.BounceSMTP)
answers what aiosmtpd's own reading answers, for plain paths and odd ones alike: the same
address is accepted or refused, with the same parameters."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.bounces.receiver import BounceSMTP


class _Handler:
    pass


QUICK, STOCK = BounceSMTP(_Handler()), SMTP(_Handler())
LIMITED = BounceSMTP(_Handler()), SMTP(_Handler())
for _server in LIMITED:
    _server.local_part_limit = 64  # aiosmtpd's option (a class attribute), off by default


def read(server: SMTP, path: str) -> object:
    """What reading the path gives, or the error it raises (aiosmtpd's session turns that
    into a 500 answer; a quick reading must raise alike, not accept)."""
    try:
        return server._getaddr(path)
    except Exception as exc:
        return type(exc)


PATHS = [
    "<>",
    "<a@b.c>",
    "<bounces+AbC-12_x=y@bounces.bench.example.com>",
    "<a@b.c> SIZE=100 BODY=8BITMIME",
    "<a@b.c>SIZE=1",
    "<a@b.c>  SIZE=1",
    "<a@b.c> (comment) SIZE=1",
    "<a@b.c> ",
    " <a@b.c>",
    "a@b.c",
    '<"q x"@b.c>',
    "<a..b@c>",
    "<.a@b>",
    "<a.@b>",
    "<@x,@y:a@b>",
    "<a@[1.2.3.4]>",
    "<a@b.c",
    "<a@b.c>>",
    "<a(c)@b>",
    "<ü@b.c>",
    "<a@b..c>",
    "<a@-b.c>",
    "<a@b.c.>",
    "<a@>",
    "<@b>",
    "<a>",
    "<a@b@c>",
    "<a b@c>",
    "<a@b c>",
    "<" + "x" * 65 + "@b.c>",  # over the 64-octet local part
    "<a@b.c> \nSIZE=1",
]


@pytest.mark.parametrize("path", PATHS)
def test_a_path_reads_as_aiosmtpd_reads_it(path):
    assert read(QUICK, path) == read(STOCK, path)
    assert read(LIMITED[0], path) == read(LIMITED[1], path)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='<>@.ab1+-=_ ()"[]\\:,;\t\nü', max_size=24))
def test_any_path_reads_as_aiosmtpd_reads_it(path):
    assert read(QUICK, path) == read(STOCK, path)


def test_a_plain_path_is_read_without_the_email_header_parser(monkeypatch):
    monkeypatch.setattr(SMTP, "_getaddr", lambda self, arg: (None, None))
    assert QUICK._getaddr("<bounces+T1@b.example> SIZE=9") == ("bounces+T1@b.example", "SIZE=9")
