"""CSRF protection for page forms: a per-browser random token in an HttpOnly cookie, echoed
by every form as a hidden field (double submit), plus an Origin check when the browser
sends one. SameSite=Strict session cookies already keep other sites out; this is the
second lock."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from herald.errors import Forbidden

CSRF_COOKIE = "herald_csrf"
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The browser's token; a new one (set on the response by ``ensure_csrf_cookie``)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.rstrip("/") == str(request.base_url).rstrip("/")


async def verify_csrf(request: Request) -> None:
    """Dependency of every page POST: the form's token must match the cookie's."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.cookies.get(CSRF_COOKIE)
    if (
        not isinstance(sent, str)
        or not expected
        or not hmac.compare_digest(sent, expected)
        or not _same_origin(request)
    ):
        raise Forbidden(
            "This form has expired or came from another site. Reload the page and try again.",
            code="csrf_failed",
        )
