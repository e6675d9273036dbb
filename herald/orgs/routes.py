"""Who am I, and user management under Settings (ADMIN only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from herald.auth.deps import ADMIN_ONLY, Principal, current_user
from herald.errors import Conflict, NotFound
from herald.orgs import service
from herald.orgs.models import User
from herald.orgs.schemas import MeOut, UserCreateIn, UserPatchIn, UserRow
from herald.runtime import get_session
from herald.schemas import Page
from herald.tenancy import parse_id

router = APIRouter(tags=["users"])


@router.get("/api/auth/me", response_model=MeOut, response_model_by_alias=True)
def me(
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> MeOut:
    user = session.get(User, principal.user_id)
    org = service.get_org(session, principal.org_id)
    return MeOut(user=UserRow.model_validate(user), org_name=org.name, features=org.features)


@router.get("/api/settings/users", response_model=Page[UserRow], response_model_by_alias=True)
def list_users(
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> Page[UserRow]:
    org = service.get_org(session, principal.org_id)
    users = [UserRow.model_validate(u) for u in service.list_users(session, org)]
    return Page(items=users, total=len(users), page=1, page_size=max(len(users), 1))


@router.post(
    "/api/settings/users", status_code=201, response_model=UserRow, response_model_by_alias=True
)
def create_user(
    body: UserCreateIn,
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> UserRow:
    org = service.get_org(session, principal.org_id)
    user = service.create_user(session, org, body.email, body.password, body.role.value)
    return UserRow.model_validate(user)


def _org_user(session: Session, principal: Principal, user_id: str) -> User:
    parsed = parse_id(user_id)
    user = session.get(User, parsed) if parsed else None
    if user is None or user.org_id != principal.org_id:
        raise NotFound("User not found.")
    return user


@router.patch("/api/settings/users/{user_id}", response_model=UserRow, response_model_by_alias=True)
def patch_user(
    user_id: str,
    body: UserPatchIn,
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> UserRow:
    user = _org_user(session, principal, user_id)
    if user.id == principal.user_id and (
        (body.role is not None and body.role.value != user.role) or body.is_active is False
    ):
        raise Conflict("You cannot demote or deactivate yourself.", code="self_change")
    if body.role is not None:
        user.role = body.role.value
    if body.is_active is not None:
        user.is_active = body.is_active
    session.flush()
    return UserRow.model_validate(user)
