"""A received message as the standard library's parser reads it, without its dearest step.

``email``'s parser compiles a regular expression for each multipart boundary it meets, and
every report has a boundary of its own (the MTA's queue id): that compile was about half of
reading a delivery report (docs/performance.md). ``read_message`` splits the outer multipart
at its boundary lines itself, by plain string comparison with the same rule (RFC 2046: the
boundary, an optional ``--``, optional blanks, the line's end), then reads the top headers
and each part; the tree is the one ``message_from_bytes`` builds (compat32), defects
included. Anything out of the plain shape (no boundary, no start or close line, repeated
boundary lines, a digest) is left to ``message_from_bytes`` as it is.

A plain block of fields (the top's, a leaf part's, each of a delivery status's blocks) is
read into a ``Message`` here, each field through the parser's own policy step: the parser
reads a line at a time through a generator and looks the content type up over and over,
which was most of what was left of reading a report. Any other part, and any block with one
of the parser's odd cases (a ``From `` line, a nameless field, a folded first line, text
before the blank line), goes to the standard parser.
"""

from __future__ import annotations

import io
import re
from email import feedparser, message_from_bytes
from email.errors import MultipartInvariantViolationDefect
from email.message import Message
from email.parser import HeaderParser, Parser
from email.policy import compat32
from itertools import pairwise

_LINE_ENDS = ("", "\r\n", "\n", "\r")
# The parser's own test of a header line (where the headers end is its call, not ours)
_HEADER_LINE: re.Pattern[str] = feedparser.headerRE  # type: ignore[attr-defined]
# A field's first line with a name (the parser's field characters); "From " lines, lines
# starting with ":" and the like are the parser's odd cases, left to it
_FIELD = re.compile(r"[\041-\071\073-\176]+:")
_BLANK = frozenset(("\r\n", "\n", "\r"))


def read_message(raw: bytes) -> Message:
    text = raw.decode("ascii", "surrogateescape")  # as BytesParser does
    lines = io.StringIO(text, newline="").readlines()  # the parser's own line split
    end = next((i for i, line in enumerate(lines) if not _HEADER_LINE.match(line)), len(lines))
    message = _headers(lines[:end])
    boundary = message.get_boundary() if message.get_content_maintype() == "multipart" else None
    parts = _split(lines[end + 1 :], boundary) if boundary else None
    if (
        parts is None
        or message.get_content_type() == "multipart/digest"
        or (end < len(lines) and lines[end].strip("\r\n"))  # no blank line after the headers
    ):
        return message_from_bytes(raw)
    preamble, texts, epilogue = parts
    message.set_payload([])
    message.preamble = preamble
    for part_lines in texts:
        part = _plain(part_lines) or _parsed_part("".join(part_lines))
        _drop_line_end(_last_made(part))
        message.attach(part)
    message.epilogue = epilogue
    return message


def _parsed_part(text: str) -> Message:
    part = Parser().parsestr(text)
    # the parser's last check of the message it read, a multipart without parts, is made
    # of the whole message only: a part read on its own is no whole message
    if part.defects and isinstance(part.defects[-1], MultipartInvariantViolationDefect):
        part.defects.pop()
    return part


def read_headers(text: str) -> Message:
    """``HeaderParser().parsestr(text)``: the fields, the rest as the payload."""
    return _headers(io.StringIO(text, newline="").readlines())


def _headers(lines: list[str]) -> Message:
    return _plain(lines, headers_only=True) or HeaderParser().parsestr("".join(lines))


def _plain(lines: list[str], *, headers_only: bool = False) -> Message | None:
    """The message the parser makes of ``lines`` when they are a plain header block, then
    a blank line and a body (or the end); None for anything else, and for a part whose
    body the parser would read as parts (multipart, message/* but a delivery status)."""
    read = _fields(lines)
    if read is None:
        return None
    message, end = read
    body = lines[end + 1 :]
    if headers_only:
        message.set_payload("".join(body))
        return message
    content_type = message.get_content_type()
    if content_type == "message/delivery-status":
        return message if _status_blocks(message, body) else None
    if content_type.partition("/")[0] in ("multipart", "message"):
        return None
    message.set_payload("".join(body))
    return message


def _status_blocks(status: Message, body: list[str]) -> bool:
    """A delivery status's blocks of fields, each a message of its own, as the parser
    attaches them (each block ends at a blank line, or the end); False if not plain."""
    start = 0
    while True:
        read = _fields(body, start)
        if read is None:
            return False
        block, end = read
        if block.get_content_maintype() in ("multipart", "message"):
            return False
        block.set_payload("")
        status.attach(block)
        start = end + 1  # the blank line after it
        if start >= len(body):
            return True


def _fields(lines: list[str], start: int = 0) -> tuple[Message, int] | None:
    """The fields of a plain header block from ``lines[start]`` (up to a blank line or the
    end), and the index where it ends; None if a line is one of the parser's odd cases.
    (An index, not a slice: a status of many small blocks is read in one pass.)"""
    fields: list[list[str]] = []
    end = len(lines)
    for i in range(start, len(lines)):
        line = lines[i]
        if line[0] in " \t":
            if not fields:
                return None
            fields[-1].append(line)
        elif _FIELD.match(line):
            fields.append([line])
        elif line in _BLANK:
            end = i
            break
        else:
            return None
    message = Message()
    for field in fields:
        message.set_raw(*compat32.header_source_parse(field))
    return message, end


def _last_made(message: Message) -> Message:
    """The message the parser marks last reading a part: a multipart marks itself after
    each of its parts; else the last message made (a message/* part's innermost)."""
    while (
        message.get_content_maintype() != "multipart"
        and isinstance(message._payload, list)  # type: ignore[attr-defined]
        and message._payload  # type: ignore[attr-defined]
    ):
        message = message._payload[-1]  # type: ignore[attr-defined]
    return message


def _drop_line_end(last: Message) -> None:
    """What the parser does to the part before a boundary line: the line end belongs to
    the boundary, so it comes off the last text read (a multipart's epilogue, else the
    payload)."""
    if last.get_content_maintype() == "multipart":
        if last.epilogue == "":
            last.epilogue = None
        elif last.epilogue is not None:
            last.epilogue = _without_line_end(last.epilogue)
    elif isinstance(last._payload, str):  # type: ignore[attr-defined]
        last._payload = _without_line_end(last._payload)  # type: ignore[attr-defined]


def _split(lines: list[str], boundary: str) -> tuple[str | None, list[list[str]], str] | None:
    """The preamble, the parts' lines and the epilogue, as the standard parser cuts them
    (the line end before a boundary line belongs to it); None if not plainly shaped."""
    separator = "--" + boundary
    cuts: list[tuple[int, bool]] = []  # (line, closing)
    for i, line in enumerate(lines):
        if not line.startswith(separator):
            continue
        rest = line[len(separator) :]
        closing = rest.startswith("--")
        rest = (rest[2:] if closing else rest).lstrip(" \t")
        if rest in _LINE_ENDS:
            cuts.append((i, closing))
            if closing:
                break
    if len(cuts) < 2 or not cuts[-1][1]:
        return None
    if any(b - a < 2 for (a, _), (b, _) in pairwise(cuts)):
        return None  # an empty part, or boundary lines in a row: the parser's odd cases
    first, last = cuts[0][0], cuts[-1][0]
    preamble = _without_line_end("".join(lines[:first])) if first else None
    starts = [i for i, _ in cuts]
    texts = [lines[a + 1 : b] for a, b in pairwise(starts)]
    return preamble, texts, "".join(lines[last + 1 :])


def _line_end(text: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            return end
    return ""


def _without_line_end(text: str) -> str:
    return text[: len(text) - len(_line_end(text))]
