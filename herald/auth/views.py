"""The auth pages: login and logout, the front door `/`, and Settings → My account (every
role): password change, "Sign out everywhere", and MFA enrolment with a QR code drawn on
the server."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from herald.auth import service
from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.auth.routes import client_address
from herald.errors import Conflict, NotAuthenticated, RateLimited, ValidationFailed
from herald.orgs.models import User
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings
from herald.web.csrf import verify_csrf
from herald.web.deps import page_user
from herald.web.pages import redirect, render
from herald.web.session import REFRESH_COOKIE, clear_session, set_session

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Me = Annotated[Principal, Depends(page_user)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


def _user(session: Session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    assert user is not None  # page_user just loaded it
    return user


def qr_data_uri(url: str) -> str:
    """The otpauth URL as a PNG data: URI, so no third party ever sees the secret."""
    return str(segno.make(url, error="m").png_data_uri(scale=5, border=2))


def _render(
    request: Request,
    principal: Principal,
    user: User,
    *,
    secret: str | None = None,
    otpauth_url: str | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "settings/account.html",
        principal,
        status=status,
        user=user,
        pending=bool(user.mfa_secret) and not user.mfa_enabled,
        secret=secret,
        otpauth_url=otpauth_url,
        qr=qr_data_uri(otpauth_url) if otpauth_url else None,
        error=error,
        notice=notice,
    )


NOTICES = {
    "mfa": "MFA is now on: you will need a code from your app each time you log in.",
    "password": "Password changed. Every other session has been signed out.",
}


@router.get("/settings/account", response_class=HTMLResponse)
def account_page(
    request: Request, principal: Me, session: Db, mfa: str = "", notice: str = ""
) -> HTMLResponse:
    shown = NOTICES["mfa"] if mfa else NOTICES.get(notice)
    return _render(request, principal, _user(session, principal), notice=shown)


PasswordField = Annotated[str, Form(max_length=1024)]


@router.post("/settings/account/password", response_model=None, dependencies=[Depends(verify_csrf)])
def change_password(
    request: Request,
    principal: Me,
    session: Db,
    settings: AppSettings,
    current: PasswordField = "",
    new: PasswordField = "",
) -> HTMLResponse | RedirectResponse:
    user = _user(session, principal)
    try:
        issued = service.change_password(
            session, settings, user, current, new, client_address(request)
        )
    except ValidationFailed as exc:
        if exc.keep_changes:
            session.commit()  # the wrong password counts as a failed login
        else:
            session.rollback()
        return _render(request, principal, _user(session, principal), error=exc.message, status=422)
    response = redirect("/settings/account?notice=password")
    set_session(response, settings, issued.access_token, issued.refresh_token)
    return response


@router.post(
    "/settings/account/sessions/revoke",
    response_model=None,
    dependencies=[Depends(verify_csrf)],
)
def sign_out_everywhere(principal: Me, session: Db, settings: AppSettings) -> RedirectResponse:
    service.sign_out_everywhere(session, _user(session, principal))
    response = redirect("/login")
    clear_session(response, settings)
    return response


@router.post(
    "/settings/account/mfa/setup", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)]
)
def mfa_setup(request: Request, principal: Me, session: Db, settings: AppSettings) -> HTMLResponse:
    user = _user(session, principal)
    try:
        secret, url = service.mfa_setup(session, settings, user)
    except Conflict as exc:
        return _render(request, principal, user, error=exc.message, status=exc.status)
    return _render(request, principal, user, secret=secret, otpauth_url=url)


@router.post(
    "/settings/account/mfa/enable", response_model=None, dependencies=[Depends(verify_csrf)]
)
def mfa_enable(
    request: Request,
    principal: Me,
    session: Db,
    settings: AppSettings,
    code: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse | RedirectResponse:
    user = _user(session, principal)
    try:
        service.mfa_enable(session, settings, user, code)
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        user = _user(session, principal)
        return _render(request, principal, user, error=exc.message, status=exc.status)
    return redirect("/settings/account?mfa=on")


# --- login, logout and the front door ---


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/")
def home(principal: Me) -> RedirectResponse:
    """Where `/` takes a logged-in person: Marketing if they may see it, else the CRM."""
    return redirect(
        "/marketing" if allows(principal, Capability.MARKETING_READ) else "/crm/contacts"
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "auth/login.html", next=safe_next(next), error=None, email="")


@router.post("/login", response_model=None, dependencies=[Depends(verify_csrf)])
def login_submit(
    request: Request,
    session: Db,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    mfa_code: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> HTMLResponse | RedirectResponse:
    address = client_address(request)
    try:
        issued = service.login(session, settings, email, password, mfa_code or None, address)
    except (NotAuthenticated, RateLimited) as exc:  # the failure's count is kept
        status = 429 if isinstance(exc, RateLimited) else 401
        return render(
            request,
            "auth/login.html",
            status=status,
            next=safe_next(next),
            error=exc.message,
            need_mfa=exc.code in ("mfa_required", "mfa_invalid"),
            email=email,
        )
    response = redirect(safe_next(next))
    set_session(response, settings, issued.access_token, issued.refresh_token)
    return response


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request, session: Db, settings: AppSettings) -> RedirectResponse:
    service.logout(session, request.cookies.get(REFRESH_COOKIE))
    response = redirect("/login")
    clear_session(response, settings)
    return response
