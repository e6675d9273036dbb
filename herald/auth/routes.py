"""The auth API: login, refresh, logout, MFA enrolment."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from herald.auth import service
from herald.auth.deps import current_user_row
from herald.auth.schemas import LoginIn, MfaEnableIn, MfaEnableOut, MfaSetupOut, TokenOut, UserOut
from herald.orgs.models import User
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings

router = APIRouter(prefix="/api/auth", tags=["auth"])

REFRESH_COOKIE = "refreshToken"
REFRESH_COOKIE_PATH = "/api/auth"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_refresh_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=settings.refresh_token_days * 86400,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.https,
    )


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.https,
    )


def token_body(settings: Settings, issued: service.IssuedTokens) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        expires_in=settings.access_token_seconds,
        user=UserOut.model_validate(issued.user),
    )


@router.post("/login", response_model=TokenOut, response_model_by_alias=True)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TokenOut:
    address = client_address(request)
    issued = service.login(session, settings, body.email, body.password, body.mfa_code, address)
    set_refresh_cookie(response, settings, issued.refresh_token)
    return token_body(settings, issued)


@router.post("/refresh", response_model=TokenOut, response_model_by_alias=True)
def refresh(
    request: Request,
    response: Response,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TokenOut:
    issued = service.refresh(session, settings, request.cookies.get(REFRESH_COOKIE))
    set_refresh_cookie(response, settings, issued.refresh_token)
    return token_body(settings, issued)


@router.post("/logout", status_code=204)
def logout(
    request: Request,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    service.logout(session, request.cookies.get(REFRESH_COOKIE))
    response = Response(status_code=204)
    clear_refresh_cookie(response, settings)
    return response


@router.post("/mfa/setup", response_model=MfaSetupOut, response_model_by_alias=True)
def mfa_setup(
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> MfaSetupOut:
    secret, url = service.mfa_setup(session, settings, user)
    return MfaSetupOut(secret=secret, otpauth_url=url)


@router.post("/mfa/enable", response_model=MfaEnableOut, response_model_by_alias=True)
def mfa_enable(
    body: MfaEnableIn,
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> MfaEnableOut:
    service.mfa_enable(session, settings, user, body.code)
    return MfaEnableOut(mfa_enabled=True)
