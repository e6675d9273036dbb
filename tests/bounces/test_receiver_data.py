"""The receiver's bulk reading of DATA (herald.bounces.receiver.BounceSMTP, with
herald.bounces.smtpdata) answers what aiosmtpd's line-by-line reading answers: the same
replies, the same message handed over (dot-unstuffed), the same refusals of a line too long
or a message too big, and the commands pipelined after the lone dot read alike, however
the bytes are cut on their way in.

Each session runs on a stand-in transport that collects the replies, fed piece by piece,
so every cut is reproducible. This also pins the aiosmtpd internals BounceSMTP.smtp_DATA
uses (``_reader``, ``_writer``, ``_decode_data``, ``_set_post_data_state``): a release
that changes them changes these transcripts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.bounces.receiver import MAX_MESSAGE_BYTES, BounceSMTP
from herald.dev.bouncer import HARD, SOFT, delivery_status_notification


class _Transport(asyncio.Transport):
    """Collects what the server writes; closing is noted."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 25000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (
                envelope.mail_from,
                tuple(envelope.rcpt_tos),
                envelope.content,
                envelope.original_content,
            )
        )
        return f"250 OK message {len(self.messages)}"


def _kinds(line_limit: int) -> tuple[type[SMTP], type[SMTP]]:
    """(aiosmtpd's session, Herald's) with this line length limit (a class attribute in
    aiosmtpd, which also sets its reader's limit)."""
    return (
        type("Stock", (SMTP,), {"line_length_limit": line_limit}),
        type("Quick", (BounceSMTP,), {"line_length_limit": line_limit}),
    )


async def _session(kind: type[SMTP], pieces: Sequence[bytes], size_limit: int | None) -> tuple:
    handler = _Recorder()
    server = kind(handler, data_size_limit=size_limit, hostname="mx.test", timeout=30)
    transport = _Transport()
    server.connection_made(transport)
    for piece in [b"", *pieces]:
        if piece:
            server.data_received(piece)
        for _ in range(12):  # the session's turns of the loop to read what came
            await asyncio.sleep(0)
    closed = transport.closed
    server.connection_lost(None)  # as the loop does after a close, or the client hangs up
    for _ in range(3):
        await asyncio.sleep(0)
    replies = b"".join(transport.written).split(b"\r\n")
    return replies, handler.messages, closed, transport.closed


def transcripts(
    pieces: Sequence[bytes], *, size_limit: int | None = MAX_MESSAGE_BYTES, line_limit: int = 1001
) -> tuple[tuple, tuple]:
    stock, quick = _kinds(line_limit)
    return (
        asyncio.run(_session(stock, pieces, size_limit)),
        asyncio.run(_session(quick, pieces, size_limit)),
    )


def stuffed(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def session_bytes(*sections: bytes) -> bytes:
    """EHLO, then one transaction per DATA section (as sent: stuffing and end included),
    then QUIT."""
    out = b"EHLO mx.example\r\n"
    for section in sections:
        out += b"MAIL FROM:<>\r\nRCPT TO:<b+t@x.test>\r\nDATA\r\n" + section
    return out + b"QUIT\r\n"


def ended(message: bytes) -> bytes:
    """A message as a client sends it: dot-stuffed, CRLF-ended, then the lone dot."""
    body = stuffed(message)
    return body + (b"" if body.endswith(b"\r\n") or not body else b"\r\n") + b".\r\n"


def cuts(data: bytes, every: int) -> list[bytes]:
    return [data[i : i + every] for i in range(0, len(data), every)]


DSN = delivery_status_notification(
    return_path="b+t@x.test", recipient="a@b.example", failure=HARD, original=b"From: a@b\r\n\r\n"
)
SOFT_DSN = delivery_status_notification(
    return_path="b+t@x.test", recipient="c@d.example", failure=SOFT, original=b"From: c@d\r\n\r\n"
)

SECTIONS = {
    "a DSN": ended(DSN),
    "two DSNs": ended(DSN) + b"MAIL FROM:<>\r\nRCPT TO:<b+t@x.test>\r\nDATA\r\n" + ended(SOFT_DSN),
    "empty": b".\r\n",
    "one line without its CRLF": b"abc\r\n.\r\n",
    "dots at line starts": ended(b".\r\n..\r\n.x\r\nx.\r\n. \r\n...\r\nend.\r\n"),
    "a dot ending each line": b"a.\r\nb.\r\n.\r\n",
    "a dot after a bare LF or CR is no end": b"a\n.\r\nb\r.\r\nc\r\n.\r\n",
    "CR CR LF and bare ends": b"a\r\r\nb\n\rc\r\n\r\n\n.\r\n",
    "stuffed dot at the very start": b"..\r\n.\r\n",
    "an end then pipelined commands": ended(b"x") + b"RSET\r\nNOOP\r\n",
    "no end at all (the connection closes)": b"abc\r\ndef.\r\n",
    "lines at the length limit": b"".join(
        b"y" * n + b"\r\n" for n in (997, 998, 999, 1000, 1001, 1002, 1003, 4000)
    )
    + b".\r\n",
    "a line of 999 octets": b"y" * 999 + b"\r\n.\r\n",
    "a line of 1000 octets": b"y" * 1000 + b"\r\n.\r\n",
    "a line of 1001 octets": b"y" * 1001 + b"\r\n.\r\n",
    "a line of 1002 octets": b"y" * 1002 + b"\r\n.\r\n",
    "a long line ending in a dot": b"y" * 1500 + b".\r\n.\r\n",
    "a long line then a dot line": b"y" * 1500 + b"\r\n.\r\n",
    "8-bit and NUL": b"\xff\xfe\x00 caf\xc3\xa9\r\n.\r\n",
}


@pytest.mark.parametrize("name", SECTIONS)
@pytest.mark.parametrize("every", [None, 1, 2, 3, 5, 7, 64, 1000, 1001, 1003, 2048])
def test_a_section_cut_any_way_reads_as_aiosmtpd_reads_it(name, every):
    data = session_bytes(SECTIONS[name])
    stock, quick = transcripts([data] if every is None else cuts(data, every))
    assert quick == stock


@pytest.mark.parametrize("name", ["a DSN", "dots at line starts", "an end then pipelined commands"])
def test_every_single_cut_reads_alike(name):
    data = session_bytes(SECTIONS[name])
    for at in range(1, len(data)):
        stock, quick = transcripts([data[:at], data[at:]])
        assert quick == stock, at


SIZE = 3000  # a small size limit, the same rule as the receiver's 10 MiB


def _lines(*lengths: int) -> bytes:
    return b"".join(b"z" * n + b"\r\n" for n in lengths)


OVER = {
    "at the limit": _lines(*[98] * 30),
    "one octet over": _lines(*[98] * 29, 99),
    "over by many lines": _lines(*[98] * 100),
    "far over (more than a line limit past it)": _lines(*[500] * 40),
    "a long line before the limit": _lines(1500, *[98] * 40),
    "a 1000-octet line taking it over": _lines(*[98] * 25, 1000),
    "a 1001-octet line taking it over": _lines(*[98] * 25, 1001),
    "a 1002-octet line taking it over": _lines(*[98] * 25, 1002),
    "a 1000-octet line within the limit, then over": _lines(1000, *[98] * 40),
    "a huge line taking it over": _lines(*[98] * 25, 9000),
    "a huge line from the start": _lines(9000),
    "a huge line with a dot end inside": b"z" * 2000 + b"\r\n.z.\r\n" + b"z" * 3000 + b"\r\n",
    "over, then a long line": _lines(*[98] * 40, 1500),
}


@pytest.mark.parametrize("name", OVER)
@pytest.mark.parametrize("every", [None, 1, 3, 100, 1001, 4096])
def test_a_section_too_big_or_too_long_is_refused_as_aiosmtpd_refuses_it(name, every):
    data = session_bytes(OVER[name] + b".\r\n", ended(b"after"))
    stock, quick = transcripts([data] if every is None else cuts(data, every), size_limit=SIZE)
    assert quick == stock


def test_without_a_size_limit_only_long_lines_are_refused():
    data = session_bytes(_lines(*[98] * 100) + b".\r\n", _lines(5, 1000) + b".\r\n")
    stock, quick = transcripts(cuts(data, 700), size_limit=None)
    assert quick == stock
    assert stock[0].count(b"500 Line too long (see RFC5321 4.5.3.1.6)") == 1


def test_the_receivers_size_limit_refuses_a_message_over_10_mib():
    big = _lines(*[998] * (MAX_MESSAGE_BYTES // 1000 + 5))
    data = session_bytes(big + b".\r\n", ended(DSN))
    stock, quick = transcripts(cuts(data, 65536))
    assert quick == stock
    assert b"552 Error: Too much mail data" in stock[0]
    assert [m[3] for m in stock[1]] == [DSN]


def test_other_commands_around_data_answer_alike():
    data = (
        b"DATA\r\nEHLO mx.example\r\nDATA\r\nMAIL FROM:<>\r\nDATA\r\n"
        b"RCPT TO:<b+t@x.test>\r\nDATA x\r\nHELP DATA\r\nDATA\r\nabc\r\n.\r\nQUIT\r\n"
    )
    stock, quick = transcripts([data])
    assert quick == stock


def test_a_connection_lost_during_data_closes_alike():
    data = session_bytes(b"abc\r\ndef")
    stock, quick = transcripts(cuts(data, 10))
    assert quick == stock
    assert stock[2:] == (False, True)  # the session closes its side once the client's gone


def test_with_decoded_data_aiosmtpd_reads_it():
    class Decoded(BounceSMTP):
        def __init__(self, handler: Any, **kwargs: Any) -> None:
            super().__init__(handler, decode_data=True, **kwargs)

    class StockDecoded(SMTP):
        def __init__(self, handler: Any, **kwargs: Any) -> None:
            super().__init__(handler, decode_data=True, **kwargs)

    data = session_bytes(ended(b"caf\xc3\xa9"), ended(b"plain"))
    assert asyncio.run(_session(Decoded, [data], None)) == asyncio.run(
        _session(StockDecoded, [data], None)
    )


_BYTES = st.lists(
    st.sampled_from([b"a", b"b", b".", b"\r", b"\n", b"\r\n", b".\r\n", b"\r\n.\r\n", b"zzzzzzz"]),
    max_size=60,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    sections=st.lists(_BYTES, min_size=1, max_size=3),
    cut=st.integers(min_value=1, max_value=40),
    size_limit=st.sampled_from([None, 1, 10, 30, 60, 200]),
    line_limit=st.integers(min_value=24, max_value=40),
)
def test_any_stream_reads_as_aiosmtpd_reads_it(sections, cut, size_limit, line_limit):
    # each section gets an end, but an earlier lone dot may end it first: what follows is
    # read as commands, alike
    data = session_bytes(*(s + b"\r\n.\r\n" for s in sections))
    stock, quick = transcripts(cuts(data, cut), size_limit=size_limit, line_limit=line_limit)
    assert quick == stock
