"""CSRF protection for page forms: a per-browser random token in an HttpOnly cookie, echoed
by every form as a hidden field (double submit), plus an Origin check when the browser
sends one. SameSite=Strict session cookies already keep other sites out; this is the
second lock."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import FormData

from herald.errors import Forbidden
from herald.runtime import get_runtime

CSRF_COOKIE = "herald_csrf"
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The browser's token; a new one (set on the response by ``ensure_csrf_cookie``)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _same_origin(request: Request) -> bool:
    """No Origin header (older browsers) passes; otherwise it must be this site, as the
    request reached us or as HERALD_BASE_URL names it (behind a TLS-terminating proxy)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    settings = get_runtime(request).settings
    return origin.lower().rstrip("/") in {
        _origin(str(request.base_url)),
        _origin(settings.base_url),
    }


async def verify_csrf(request: Request) -> None:
    """Dependency of every page POST: the form's token must match the cookie's."""
    form = await request.form()
    _check(request, form.get(CSRF_FIELD))


CSRF_HEADER = "x-csrf-token"


def verify_csrf_before_body(request: Request) -> None:
    """For an upload form, checked before its body is read: the token travels in the form's
    action (``?csrf_token=``) or an ``X-CSRF-Token`` header. Without either (an older page
    still open), the Origin and the cookie are checked here and the form's field by
    ``check_form_token`` once the handler's login and role checks let it read the body."""
    sent = request.query_params.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if sent is None and request.cookies.get(CSRF_COOKIE) and _same_origin(request):
        request.state.csrf_in_form = True
        return
    _check(request, sent)


def check_form_token(request: Request, form: FormData) -> None:
    """The form field's token, when ``verify_csrf_before_body`` left it to the form."""
    if getattr(request.state, "csrf_in_form", False):
        _check(request, form.get(CSRF_FIELD))


def _check(request: Request, sent: object) -> None:
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
