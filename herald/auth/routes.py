"""The auth API: login, refresh, logout, signing out everywhere, password change, MFA
enrolment."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from herald.auth import service
from herald.auth.deps import current_user_row
from herald.auth.schemas import (
    LoginIn,
    MfaEnableIn,
    MfaEnableOut,
    MfaSetupOut,
    PasswordChangeIn,
    TokenOut,
    UserOut,
)
from herald.openapi import error_responses
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


LOGIN_NOTES = {
    401: "Wrong email or password (`invalid_credentials`), or the account needs an MFA "
    "code (`mfa_required`) or the code is wrong or was already used (`mfa_invalid`).",
    429: "Too many failed logins for this account or client address; try again after "
    "`Retry-After` seconds.",
}
PASSWORD_CHANGE_NOTES = {
    422: "The current password is wrong (`wrong_password`, field `current`), or the new "
    "one is shorter than 8 characters (field `new`).",
    429: "Too many wrong passwords for this account; try again after `Retry-After` seconds.",
}


@router.post(
    "/login",
    response_model=TokenOut,
    response_model_by_alias=True,
    responses=error_responses(401, 413, 422, 429, notes=LOGIN_NOTES),
)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TokenOut:
    """An access token (15 minutes) in the body and a `refreshToken` cookie (HttpOnly,
    SameSite=Strict, Path=/api/auth). `mfaCode` is required once MFA is enabled."""
    address = client_address(request)
    issued = service.login(session, settings, body.email, body.password, body.mfa_code, address)
    set_refresh_cookie(response, settings, issued.refresh_token)
    return token_body(settings, issued)


@router.post(
    "/refresh",
    response_model=TokenOut,
    response_model_by_alias=True,
    responses=error_responses(
        401,
        notes={
            401: "No `refreshToken` cookie, or it is invalid or expired, or it was already "
            "used (then the whole token family is revoked)."
        },
    ),
)
def refresh(
    request: Request,
    response: Response,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TokenOut:
    """Takes the `refreshToken` cookie (no bearer token): a new access token and a rotated
    refresh cookie. Each refresh token works once."""
    issued = service.refresh(session, settings, request.cookies.get(REFRESH_COOKIE))
    set_refresh_cookie(response, settings, issued.refresh_token)
    return token_body(settings, issued)


@router.post("/logout", status_code=204)
def logout(
    request: Request,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    """Signs the `refreshToken` cookie's session out (its token family is revoked) and clears
    the cookie; 204 even without one."""
    service.logout(session, request.cookies.get(REFRESH_COOKIE))
    response = Response(status_code=204)
    clear_refresh_cookie(response, settings)
    return response


@router.post(
    "/sessions/revoke",
    status_code=204,
    response_class=Response,
    responses=error_responses(401),
)
def revoke_sessions(
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    """Sign out everywhere: every refresh token of the caller is revoked (pages included)
    and every access token issued so far stops working, this one too; 204."""
    service.sign_out_everywhere(session, user)
    response = Response(status_code=204)
    clear_refresh_cookie(response, settings)
    return response


@router.post(
    "/password",
    response_model=TokenOut,
    response_model_by_alias=True,
    responses=error_responses(401, 413, 422, 429, notes=PASSWORD_CHANGE_NOTES),
)
def change_password(
    body: PasswordChangeIn,
    request: Request,
    response: Response,
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> TokenOut:
    """Changes the caller's password. Every session of the user is signed out (refresh and
    access tokens); the answer carries new tokens for this one, as a login does."""
    issued = service.change_password(
        session, settings, user, body.current, body.new, client_address(request)
    )
    set_refresh_cookie(response, settings, issued.refresh_token)
    return token_body(settings, issued)


@router.post(
    "/mfa/setup",
    response_model=MfaSetupOut,
    response_model_by_alias=True,
    responses=error_responses(
        401, 409, notes={409: "MFA is already enabled (`mfa_already_enabled`)."}
    ),
)
def mfa_setup(
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> MfaSetupOut:
    """A new TOTP secret and its `otpauth://` URL for an authenticator app; MFA is on only
    once `POST /api/auth/mfa/enable` confirms a code."""
    secret, url = service.mfa_setup(session, settings, user)
    return MfaSetupOut(secret=secret, otpauth_url=url)


@router.post(
    "/mfa/enable",
    response_model=MfaEnableOut,
    response_model_by_alias=True,
    responses=error_responses(
        401,
        409,
        413,
        422,
        notes={
            409: "MFA is already enabled (`mfa_already_enabled`), or setup was not called "
            "first (`mfa_not_set_up`).",
            422: "The code does not match the secret from setup (`mfa_invalid`).",
        },
    ),
)
def mfa_enable(
    body: MfaEnableIn,
    user: User = Depends(current_user_row),
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> MfaEnableOut:
    """Turns MFA on with a current code from the setup secret; from then on login needs
    `mfaCode`."""
    service.mfa_enable(session, settings, user, body.code)
    return MfaEnableOut(mfa_enabled=True)
