"""Who is looking at a page: the access cookie, checked like an API token; no session
sends the browser to the login page, a missing licence or role gets a 403 page."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from herald.auth.deps import Principal, principal_for_token
from herald.errors import Forbidden, HeraldError, NotAuthenticated
from herald.orgs.models import Role
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


def marketing_page(principal: Principal = Depends(page_user)) -> Principal:
    if not principal.has_feature("marketing"):
        raise Forbidden(
            "Your organisation's licence does not include the Marketing module.",
            code="feature_required",
        )
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(
            "The Marketing module needs the ADMIN or MANAGER role.", code="role_required"
        )
    return principal


def admin_page(principal: Principal = Depends(page_user)) -> Principal:
    if principal.role != Role.ADMIN:
        raise Forbidden("Only an ADMIN can do this.", code="role_required")
    return principal


def crm_writer_page(principal: Principal = Depends(page_user)) -> Principal:
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden("Changing contacts needs the ADMIN or MANAGER role.", code="role_required")
    return principal


def marketing_writer_page(principal: Principal = Depends(marketing_page)) -> Principal:
    if principal.role != Role.ADMIN:
        raise Forbidden("Only an ADMIN can change campaigns.", code="role_required")
    return principal
