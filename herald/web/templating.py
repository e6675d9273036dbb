"""Jinja2 templates (autoescaped), the per-response CSP nonce and the CSP itself."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def new_nonce() -> str:
    """16 random bytes, URL-safe: a fresh one for every response."""
    return secrets.token_urlsafe(16)


def csp_header(nonce: str | None = None) -> str:
    """Nothing but our own origin, and inline code only with this response's nonce (none at
    all without one: the public pages keep their style and script in static files)."""
    inline = f" 'nonce-{nonce}'" if nonce else ""
    return (
        "default-src 'self'; "
        f"script-src 'self'{inline}; "
        f"style-src 'self'{inline}; "
        "img-src 'self' data:; "
        "frame-src 'self'; "
        "form-action 'self'; "
        "base-uri 'none'; "
        "object-src 'none'; "
        "frame-ancestors 'none'"
    )
