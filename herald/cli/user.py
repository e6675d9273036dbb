"""`herald user`: create and list users of an org."""

from __future__ import annotations

import typer

from herald.audit import service as audit
from herald.auth.service import reset_mfa
from herald.cli.output import JSON_OPTION, cli_session, emit
from herald.orgs import service

app = typer.Typer(help="Users who log in to Herald.", no_args_is_help=True)


@app.command("create")
def create(
    org_id: str = typer.Option(..., "--org", help="The org id (from `herald org create`)."),
    email: str = typer.Option(..., "--email"),
    password: str = typer.Option(..., "--password", help="At least 8 characters."),
    role: str = typer.Option("USER", "--role", help="ADMIN, MANAGER or USER."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a user in an org."""
    with cli_session(as_json) as session:
        org = service.get_org(session, org_id)
        actor = audit.system_actor(org.id, audit.CLI)
        user = service.create_user(session, org, email, password, role, actor=actor)
        data = {"id": str(user.id), "email": user.email, "role": user.role, "orgId": str(org.id)}
    emit(data, as_json, str(data["id"]))


@app.command("list")
def list_(
    org_id: str = typer.Option(..., "--org", help="The org id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List an org's users."""
    with cli_session(as_json) as session:
        org = service.get_org(session, org_id)
        items = [
            {
                "id": str(u.id),
                "email": u.email,
                "role": u.role,
                "orgId": str(u.org_id),
                "mfaEnabled": u.mfa_enabled,
            }
            for u in service.list_users(session, org)
        ]
    text = "\n".join(f"{u['id']}  {u['role']:<8} {u['email']}" for u in items) or "(no users)"
    emit({"items": items, "total": len(items)}, as_json, text)


@app.command("reset-mfa")
def reset_mfa_command(
    email: str = typer.Option(..., "--email", help="The user's login email."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Turn MFA off for a user who lost their device, or whose enrolment cannot be read
    after HERALD_SECRET_KEY changed. They log in with their password, then enrol again
    from My account."""
    with cli_session(as_json) as session:
        user = service.get_user_by_email(session, email)
        reset_mfa(session, user, audit.system_actor(user.org_id, audit.CLI))
        data = {"id": str(user.id), "email": user.email, "mfaEnabled": False}
    emit(data, as_json, f"MFA is off for {data['email']}; they can enrol again from My account.")
