"""Hostile mail for the receiver and the parser: what anyone on the Internet may send."""

from __future__ import annotations

# A part whose charset name decodes to "x\0y": bytes.decode() raises ValueError for it.
CHARSET_WITH_NUL = (
    b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@acme.example.com\r\n"
    b"Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset*=us-ascii''x%00y\r\n\r\nhello\r\n"
)

_HEAD = b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"


def nested(depth: int, inner: bytes = b"Content-Type: text/plain\r\n\r\nuser unknown\r\n") -> bytes:
    """``depth`` multiparts, each the only part of the one around it, then ``inner``."""
    out = _HEAD
    for i in range(depth):
        out += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    out += inner
    for i in reversed(range(depth)):
        out += b"\r\n--b%d--\r\n" % i
    return out


def with_parts(count: int) -> bytes:
    """One multipart of ``count`` small text parts."""
    parts = b"".join(
        b"--zz\r\nContent-Type: text/plain\r\n\r\nuser%d@example.com: user unknown\r\n" % i
        for i in range(count)
    )
    return _HEAD + b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n" + parts + b"--zz--\r\n"
