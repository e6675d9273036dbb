"""API request dependencies: who is calling (the bearer token), and whether the rule of
herald.auth.access lets them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from herald.auth.access import Capability, enforce
from herald.auth.tokens import decode_access_token
from herald.bearer import NO_TOKEN, bearer_token
from herald.errors import NotAuthenticated
from herald.orgs.models import Org, Role, User
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: Role
    features: frozenset[str]
    org_name: str = ""


def request_token(request: Request) -> str | None:
    """The API's token: the Authorization header only. Cookies are the pages' business, so
    a cross-site request can never act on the API with a browser's cookies."""
    return bearer_token(request.headers.get("authorization", ""))


def current_user(
    request: Request,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Principal:
    token = request_token(request)
    if token is None:
        raise NotAuthenticated(NO_TOKEN)
    return principal_for_token(session, settings, token)


def principal_for_token(session: Session, settings: Settings, token: str) -> Principal:
    """Who a valid access token belongs to, checked against the database (active user,
    same org, issued since the user's sessions were last revoked); NotAuthenticated
    otherwise."""
    claims = decode_access_token(settings, token)
    user = session.get(User, claims.user_id)
    if (
        user is None
        or not user.is_active
        or user.org_id != claims.org_id
        or claims.epoch != user.session_epoch
    ):
        raise NotAuthenticated("The access token is invalid.", code="invalid_token")
    org = session.get(Org, user.org_id)
    if org is None:
        raise NotAuthenticated("The access token is invalid.", code="invalid_token")
    return Principal(
        user_id=user.id,
        org_id=user.org_id,
        email=user.email,
        role=Role(user.role),
        features=frozenset(org.features or []),
        org_name=org.name,
    )


def current_user_row(
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> User:
    user = session.get(User, principal.user_id)
    assert user is not None  # current_user just loaded it
    return user


def require(
    capability: Capability, caller: Callable[..., Principal] = current_user
) -> Callable[..., Principal]:
    """A dependency: the caller (the API's bearer token by default; pages pass their own),
    if herald.auth.access allows the capability; its 403 otherwise."""

    def dependency(principal: Principal = Depends(caller)) -> Principal:
        enforce(principal, capability)
        return principal

    return dependency


ADMIN_ONLY = require(Capability.SETTINGS)
CRM_WRITERS = require(Capability.CRM_WRITE)
MARKETING_READ = require(Capability.MARKETING_READ)
MARKETING_WRITE = require(Capability.MARKETING_WRITE)
