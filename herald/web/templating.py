"""Jinja2 templates (autoescaped) and the per-response CSP nonce."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


_NONCE_BYTES = 16
_DRAW = 256  # nonces per call to the OS's random source
_drawn = threading.local()


def new_nonce() -> str:
    """16 bytes from the OS's random source, URL-safe: ``secrets.token_urlsafe(16)``, but
    drawn 4 KB at a time (a system call per response was a twentieth of a one-click
    POST). Each thread has its own draw, and a forked child starts a new one, so no two
    responses share a nonce."""
    chunks = getattr(_drawn, "chunks", None)
    chunk = next(chunks, None) if chunks is not None else None
    if chunk is None:
        data = os.urandom(_NONCE_BYTES * _DRAW)
        chunks = _drawn.chunks = iter(
            [data[i : i + _NONCE_BYTES] for i in range(0, len(data), _NONCE_BYTES)]
        )
        chunk = next(chunks)
    return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode("ascii")


def _forget_draw() -> None:
    _drawn.chunks = None


os.register_at_fork(after_in_child=_forget_draw)


def csp_header(nonce: str) -> str:
    """Nothing but our own origin, and inline code only with this response's nonce."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; "
        "frame-src 'self'; "
        "form-action 'self'; "
        "base-uri 'none'; "
        "object-src 'none'; "
        "frame-ancestors 'none'"
    )
