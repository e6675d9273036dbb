"""A received message as the standard library's parser reads it, without its dearest step.

``email``'s parser compiles a regular expression for each multipart boundary it meets, and
every report has a boundary of its own (the MTA's queue id): that compile was about half of
reading a delivery report (docs/performance.md). ``read_message`` splits the outer multipart
at its boundary lines itself, by plain string comparison with the same rule (RFC 2046: the
boundary, an optional ``--``, optional blanks, the line's end), and has the standard parser
read the top headers and each part; the tree is the one ``message_from_bytes`` builds
(compat32). Anything out of the plain shape (no boundary, no start or close line, repeated
boundary lines, a digest) is left to ``message_from_bytes`` as it is.
"""

from __future__ import annotations

import io
import re
from email import feedparser, message_from_bytes
from email.message import Message
from email.parser import Parser
from itertools import pairwise

_LINE_ENDS = ("", "\r\n", "\n", "\r")
# The parser's own test of a header line (where the headers end is its call, not ours)
_HEADER_LINE: re.Pattern[str] = feedparser.headerRE  # type: ignore[attr-defined]


def read_message(raw: bytes) -> Message:
    text = raw.decode("ascii", "surrogateescape")  # as BytesParser does
    lines = io.StringIO(text, newline="").readlines()  # the parser's own line split
    end = next((i for i, line in enumerate(lines) if not _HEADER_LINE.match(line)), len(lines))
    message = Parser().parsestr("".join(lines[:end]), headersonly=True)
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
    for part_text in texts:
        part = Parser().parsestr(part_text)
        _drop_line_end(_last_made(part))
        message.attach(part)
    message.epilogue = epilogue
    return message


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


def _split(lines: list[str], boundary: str) -> tuple[str | None, list[str], str] | None:
    """The preamble, the parts' texts and the epilogue, as the standard parser cuts them
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
    texts = ["".join(lines[a + 1 : b]) for a, b in pairwise(starts)]
    return preamble, texts, "".join(lines[last + 1 :])


def _line_end(text: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            return end
    return ""


def _without_line_end(text: str) -> str:
    return text[: len(text) - len(_line_end(text))]
