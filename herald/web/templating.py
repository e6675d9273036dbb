"""Jinja2 templates (autoescaped) and the per-response CSP nonce."""

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
