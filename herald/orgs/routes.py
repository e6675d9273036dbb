"""Who am I, and user management under Settings (ADMIN only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.deps import ADMIN_ONLY, Principal, current_user
from herald.openapi import BODY, GATED, LOGGED_IN, NOT_FOUND, error_responses
from herald.orgs import service
from herald.orgs.models import User
from herald.orgs.schemas import MeOut, UserCreateIn, UserPatchIn, UserRow
from herald.runtime import get_session
from herald.schemas import Page

router = APIRouter(tags=["users"])


@router.get("/api/auth/me", response_model=MeOut, response_model_by_alias=True, responses=LOGGED_IN)
def me(
    principal: Principal = Depends(current_user),
    session: Session = Depends(get_session, scope="function"),
) -> MeOut:
    """The caller, their organisation's name and its licence features."""
    user = session.get(User, principal.user_id)
    org = service.get_org(session, principal.org_id)
    return MeOut(user=UserRow.model_validate(user), org_name=org.name, features=org.features)


@router.get(
    "/api/settings/users",
    response_model=Page[UserRow],
    response_model_by_alias=True,
    responses=GATED,
)
def list_users(
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> Page[UserRow]:
    """Every user of the caller's organisation, oldest first, in one page (ADMIN only)."""
    org = service.get_org(session, principal.org_id)
    users = [UserRow.model_validate(u) for u in service.list_users(session, org)]
    return Page(items=users, total=len(users), page=1, page_size=max(len(users), 1))


@router.post(
    "/api/settings/users",
    status_code=201,
    response_model=UserRow,
    response_model_by_alias=True,
    responses={
        **GATED,
        **BODY,
        **error_responses(409, notes={409: "A user with this email exists (`email_taken`)."}),
    },
)
def create_user(
    body: UserCreateIn,
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> UserRow:
    """A new user in the caller's organisation (ADMIN only); the email is unique."""
    org = service.get_org(session, principal.org_id)
    user = service.create_user(
        session, org, body.email, body.password, body.role.value, actor=audit.actor(principal)
    )
    return UserRow.model_validate(user)


@router.patch(
    "/api/settings/users/{user_id}",
    response_model=UserRow,
    response_model_by_alias=True,
    responses={
        **GATED,
        **NOT_FOUND,
        **BODY,
        **error_responses(
            409, notes={409: "Nobody demotes or deactivates themselves (`self_change`)."}
        ),
    },
)
def patch_user(
    user_id: str,
    body: UserPatchIn,
    principal: Principal = Depends(ADMIN_ONLY),
    session: Session = Depends(get_session, scope="function"),
) -> UserRow:
    """Changes a user's role or active flag (ADMIN only); fields left out stay."""
    user = service.get_org_user(session, principal.org_id, user_id)
    service.update_user(
        session, audit.actor(principal), user, role=body.role, is_active=body.is_active
    )
    return UserRow.model_validate(user)
