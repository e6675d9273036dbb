"""Request dependencies: who is calling, and whether their role and licence allow it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from herald.auth.tokens import decode_access_token
from herald.errors import Forbidden, NotAuthenticated
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

    def has_feature(self, feature: str) -> bool:
        return feature in self.features


def bearer_token(request: Request) -> str | None:
    """The API's token: the Authorization header only. Cookies are the pages' business, so
    a cross-site request can never act on the API with a browser's cookies."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_user(
    request: Request,
    session: Session = Depends(get_session, scope="function"),
    settings: Settings = Depends(get_settings_dep),
) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated("Log in first: send Authorization: Bearer <accessToken>.")
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


def _role_gate(principal: Principal, roles: frozenset[Role]) -> Principal:
    if roles and principal.role not in roles:
        names = sorted(r.value for r in roles)
        raise Forbidden(
            f"This needs the {' or '.join(names)} role.",
            code="role_required",
            details={"requiredRoles": names},
        )
    return principal


def require_role(*roles: Role) -> Callable[..., Principal]:
    allowed = frozenset(roles)

    def dependency(principal: Principal = Depends(current_user)) -> Principal:
        return _role_gate(principal, allowed)

    return dependency


def require_feature(feature: str, *roles: Role) -> Callable[..., Principal]:
    """The org's licence feature and, when given, one of the roles; 403 names what is missing."""
    allowed = frozenset(roles)

    def dependency(principal: Principal = Depends(current_user)) -> Principal:
        if not principal.has_feature(feature):
            raise Forbidden(
                f"Your organisation's licence does not include the '{feature}' feature.",
                code="feature_required",
                details={"feature": feature},
            )
        return _role_gate(principal, allowed)

    return dependency


ADMIN_ONLY = require_role(Role.ADMIN)
CRM_WRITERS = require_role(Role.ADMIN, Role.MANAGER)
MARKETING_READ = require_feature("marketing", Role.ADMIN, Role.MANAGER)
MARKETING_WRITE = require_feature("marketing", Role.ADMIN)
