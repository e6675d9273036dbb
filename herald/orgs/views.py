"""Settings pages: the landing page, and Users (ADMIN only): list, create, change a role."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.errors import Conflict, ValidationFailed
from herald.orgs import service
from herald.orgs.models import Role
from herald.runtime import get_session
from herald.web.csrf import verify_csrf
from herald.web.deps import page_requires, page_user
from herald.web.pages import field_errors, redirect, render

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Admin = Annotated[Principal, Depends(page_requires(Capability.SETTINGS))]

NOTICES = {"created": "User created.", "role": "Role changed."}


@router.get("/settings", response_class=HTMLResponse)
def settings_home(
    request: Request, principal: Annotated[Principal, Depends(page_user)]
) -> HTMLResponse:
    return render(
        request, "settings/index.html", principal, is_admin=allows(principal, Capability.SETTINGS)
    )


def _render_users(
    request: Request,
    principal: Principal,
    session: Session,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    alert: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    org = service.get_org(session, principal.org_id)
    return render(
        request,
        "settings/users.html",
        principal,
        status=status,
        users=service.list_users(session, org),
        roles=[role.value for role in Role],
        values=values or {"email": "", "role": Role.USER.value},
        errors=errors or {},
        notice=notice,
        alert=alert,
    )


@router.get("/settings/users", response_class=HTMLResponse)
def users_page(request: Request, principal: Admin, session: Db, notice: str = "") -> HTMLResponse:
    return _render_users(request, principal, session, notice=NOTICES.get(notice))


@router.post("/settings/users", response_model=None, dependencies=[Depends(verify_csrf)])
def create_user(
    request: Request,
    principal: Admin,
    session: Db,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse | RedirectResponse:
    org = service.get_org(session, principal.org_id)
    try:
        service.create_user(session, org, email, password, role, actor=audit.actor(principal))
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        return _render_users(
            request,
            principal,
            session,
            values={"email": email, "role": role},
            errors=field_errors(exc, conflict_field="email"),
            status=exc.status,
        )
    return redirect("/settings/users?notice=created")


@router.post(
    "/settings/users/{user_id}/role", response_model=None, dependencies=[Depends(verify_csrf)]
)
def change_role(
    request: Request,
    user_id: str,
    principal: Admin,
    session: Db,
    role: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse | RedirectResponse:
    user = service.get_org_user(session, principal.org_id, user_id)
    try:
        service.update_user(session, audit.actor(principal), user, role=service.parse_role(role))
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        return _render_users(request, principal, session, alert=exc.message, status=exc.status)
    return redirect("/settings/users?notice=role")
