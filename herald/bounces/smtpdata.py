"""Reading an SMTP DATA section in bulk, with aiosmtpd's outcome.

aiosmtpd reads DATA a line at a time (a ``readuntil`` and a turn of its loop for each of a
report's fifty-odd lines: 81 µs of a DSN's CPU in ``herald inbound`` against 15 µs read
this way, docs/performance.md). ``read_data`` reads from one ``.<CR><LF>`` to the next
(few in a report) and gives what aiosmtpd's loop gives for the same bytes, however they
arrive: the message dot-unstuffed, or the error aiosmtpd answers after the end of DATA (a
line over its length limit, more than the size limit). tests/bounces/test_receiver_data.py compares
the two on the same streams, cut into every kind of piece.

aiosmtpd's rules, which depend only on the lengths of the section's lines (a line ends at
the first CRLF): a line longer than the reader's limit (aiosmtpd sets it to
``line_length_limit``) is too long as soon as it is met; any other line counts toward the
size, and the section is too big at the line that takes it over the limit, else too long
when the line with its CRLF is over ``line_length_limit``. The first of these to happen
decides; the section ends at a line that is a lone dot.
"""

from __future__ import annotations

import asyncio

TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"

_DOT_END = b".\r\n"
_CRLF = b"\r\n"


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> bytes | str:
    """The DATA section from ``reader`` (after the 354) up to its lone dot, dot-unstuffed,
    or the error to answer (TOO_LONG or TOO_MUCH) once it is all read. Bytes after the
    lone dot stay in ``reader`` (pipelined commands)."""
    chunks: list[bytes] = []
    held = 0  # bytes in ``chunks``
    verdict: str | None = None
    # Beyond this, aiosmtpd's outcome is known (see _outcome): stop keeping the bytes.
    keep = (size_limit + line_limit + 2) if size_limit else None
    last = _CRLF  # the last two bytes read: DATA starts at the start of a line
    while True:
        try:
            chunk = await reader.readuntil(_DOT_END)
        except asyncio.LimitOverrunError as overrun:  # no ".CRLF" within the reader's limit
            chunk = await reader.read(overrun.consumed)
            ended = False
        else:  # a dot then CRLF: the end if the dot starts a line
            ended = (last + chunk)[-5:-3] == _CRLF
        last = chunk[-2:] if len(chunk) >= 2 else (last + chunk)[-2:]
        if verdict is None:
            chunks.append(chunk)
            held += len(chunk)
            if keep is not None and held > keep and not ended:
                verdict = _outcome(b"".join(chunks), size_limit, line_limit, complete=False)
                chunks.clear()
        if ended:
            break
    if verdict is not None:
        return verdict
    data = b"".join(chunks)[: -len(_DOT_END)]
    outcome = _outcome(data, size_limit, line_limit, complete=True)
    if outcome is not None:
        return outcome
    if data.startswith(b".") or b"\r\n." in data:  # dot-unstuffing (RFC 5321 4.5.2)
        return (_CRLF + data).replace(b"\r\n.", _CRLF)[len(_CRLF) :]
    return data


def _outcome(data: bytes, size_limit: int | None, line_limit: int, *, complete: bool) -> str | None:
    """aiosmtpd's error for the section ``data`` (None: none). ``complete``: ``data`` is
    the whole section (its lines each end with CRLF); else it is the start of one that went
    more than ``line_limit`` + 2 bytes over ``size_limit``, and the answer is an error
    either way: the line that takes it over the limit is complete in ``data`` or over the
    line limit already."""
    if size_limit:
        if complete and len(data) <= size_limit and _longest(data) + 2 <= line_limit:
            return None  # the usual case, without a loop over the lines
    elif _longest(data) + 2 <= line_limit:
        return None
    lines = data.split(_CRLF)
    partial = lines.pop()  # after the last CRLF: empty when complete
    counted = 0
    for line in lines:
        if len(line) > line_limit:  # past the reader's limit: too long at once
            return TOO_LONG
        counted += len(line) + len(_CRLF)
        if size_limit and counted > size_limit:
            return TOO_MUCH
        if len(line) + len(_CRLF) > line_limit:
            return TOO_LONG
    if complete:
        return None
    # The line going over the size limit has no CRLF yet: over line_limit + 2 bytes of it
    # are here (``data`` is that far over), so it is past the reader's limit.
    assert len(partial) > line_limit + 1
    return TOO_LONG


def _longest(data: bytes) -> int:
    return max(map(len, data.split(_CRLF))) if data else 0
