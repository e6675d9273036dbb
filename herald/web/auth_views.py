"""The login page (email, password, MFA code) and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from herald.auth import service
from herald.auth.routes import client_address
from herald.errors import NotAuthenticated, RateLimited
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings
from herald.web.csrf import verify_csrf
from herald.web.pages import redirect, render
from herald.web.session import REFRESH_COOKIE, clear_session, set_session

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


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
