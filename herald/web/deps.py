"""Who is looking at a page: the access cookie, checked like an API token; no session
sends the browser to the login page, a missing licence or role gets a 403 page."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from herald.auth.access import Capability
from herald.auth.deps import Principal, principal_for_token, require
from herald.errors import HeraldError, NotAuthenticated
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings
from herald.web.session import ACCESS_COOKIE


class LoginRequired(HeraldError):
    """Answered with a redirect to /login (see herald.error_handlers)."""

    status = 303
    code = "login_required"

    def __init__(self, next_path: str) -> None:
        super().__init__("Log in to continue.")
        self.location = "/login?next=" + quote(next_path, safe="/")


def page_user(
    request: Request,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Principal:
    token = request.cookies.get(ACCESS_COOKIE)
    if not token:
        raise LoginRequired(request.url.path)
    try:
        return principal_for_token(session, settings, token)
    except NotAuthenticated:
        raise LoginRequired(request.url.path) from None


def page_requires(capability: Capability) -> Callable[..., Principal]:
    """The viewer, if herald.auth.access allows the capability; its refusal becomes the
    403 page (herald.error_handlers)."""
    return require(capability, caller=page_user)
