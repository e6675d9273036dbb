"""Settings → Email configuration (ADMIN only): the SMTP form and the "Send test email" form."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.access import Capability
from herald.auth.deps import Principal
from herald.errors import Conflict, HeraldError, ValidationFailed
from herald.mail.testsend import SmtpFailed
from herald.mailconfig import inbound, inbound_form, service, testmail
from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS
from herald.mailconfig.bounceaddress import DEFAULT_SOFT_BOUNCE_LIMIT
from herald.mailconfig.schemas import (
    DEFAULT_PORT,
    DEFAULT_SECURITY,
    MAILBOX_SECURITY_MODES,
    SECURITY_MODES,
    EmailConfigIn,
    TestMessageIn,
)
from herald.runtime import get_runtime, get_session, get_settings_dep
from herald.settings import Settings
from herald.text import is_number
from herald.web.csrf import verify_csrf
from herald.web.deps import page_requires
from herald.web.pages import field_errors, redirect, render

router = APIRouter(include_in_schema=False)

Db = Annotated[Session, Depends(get_session, scope="function")]
Admin = Annotated[Principal, Depends(page_requires(Capability.SETTINGS))]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Text = Annotated[str, Form(max_length=2000)]


def pydantic_errors(exc: ValidationError) -> dict[str, str]:
    """Field (JSON name) -> message, for showing each next to its input."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        name = loc[0] if loc else "form"
        errors.setdefault(name, str(err.get("msg", "Invalid value.")))
    return errors


def _number(text: str, empty: int | str | None = "") -> int | str | None:
    """A form field as the API model takes it: digits as an int, blank as ``empty``,
    anything else as typed (the model then names the field in its error)."""
    text = text.strip()
    if not text:
        return empty
    return int(text) if is_number(text) else text


def _stored_values(session: Session, principal: Principal, settings: Settings) -> dict[str, Any]:
    row = service.get_config(session, principal.org_id)
    inbound = inbound_form.stored(session, settings, row)
    if row is None:
        return {
            "configured": False,
            "host": "",
            "port": DEFAULT_PORT,
            "security": DEFAULT_SECURITY,
            "username": "",
            "passwordSet": False,
            "defaultFromName": "",
            "defaultFromEmail": "",
            "maxPerSecond": "",
            "maxPerHour": "",
            "maxConnections": DEFAULT_MAX_CONNECTIONS,
            "bounceAddress": "",
            "softBounceLimit": DEFAULT_SOFT_BOUNCE_LIMIT,
            **inbound,
        }
    return {
        "configured": True,
        "host": row.host,
        "port": row.port,
        "security": row.security,
        "username": row.username,
        "passwordSet": row.password_sealed is not None,
        "defaultFromName": row.default_from_name,
        "defaultFromEmail": row.default_from_email,
        "maxPerSecond": row.max_per_second or "",
        "maxPerHour": row.max_per_hour or "",
        "maxConnections": row.max_connections,
        "bounceAddress": row.bounce_address or "",
        "softBounceLimit": row.soft_bounce_limit,
        **inbound,
    }


def _render(
    request: Request,
    principal: Principal,
    session: Session,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    test: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    stored = _stored_values(session, principal, get_runtime(request).settings)
    return render(
        request,
        "settings/email.html",
        principal,
        status=status,
        values=values or stored,
        stored=stored,
        errors=errors or {},
        notice=notice,
        test=test or {"to": principal.email},
        security_modes=SECURITY_MODES,
        mailbox_security_modes=MAILBOX_SECURITY_MODES,
    )


@router.get("/settings/email", response_class=HTMLResponse)
def email_settings(
    request: Request, principal: Admin, session: Db, saved: str = "", regenerated: str = ""
) -> HTMLResponse:
    notice = "Email configuration saved." if saved else None
    if regenerated:
        notice = (
            "New webhook URLs made: paste them into each mail service; the old ones no longer work."
        )
    return _render(request, principal, session, notice=notice)


@router.post("/settings/email", response_model=None, dependencies=[Depends(verify_csrf)])
def save_email_settings(
    request: Request,
    principal: Admin,
    session: Db,
    settings: AppSettings,
    host: Text = "",
    port: Text = "",
    security: Text = "",
    username: Text = "",
    password: Text = "",
    default_from_name: Text = "",
    default_from_email: Text = "",
    max_per_second: Text = "",
    max_per_hour: Text = "",
    max_connections: Text = "",
    bounce_address: Text = "",
    soft_bounce_limit: Text = "",
    mailbox_host: Text = "",
    mailbox_port: Text = "",
    mailbox_security: Text = "",
    mailbox_username: Text = "",
    mailbox_password: Text = "",
    mailbox_folder: Text = "",
    sendgrid_verification_key: Annotated[str, Form(max_length=4096)] = "",
    mailgun_signing_key: Text = "",
    mailgun_clear: Text = "",
) -> HTMLResponse | RedirectResponse:
    inbound = {
        "mailbox_host": mailbox_host,
        "mailbox_port": mailbox_port,
        "mailbox_security": mailbox_security,
        "mailbox_username": mailbox_username,
        "mailbox_password": mailbox_password,
        "mailbox_folder": mailbox_folder,
        "sendgrid_verification_key": sendgrid_verification_key,
        "mailgun_signing_key": mailgun_signing_key,
        "mailgun_clear": mailgun_clear,
    }
    entered: dict[str, Any] = {
        "host": host,
        "port": _number(port),
        "security": security,
        "username": username,
        # Write-only: an empty field keeps the stored password (for the same destination).
        "password": password or None,
        "defaultFromName": default_from_name,
        "defaultFromEmail": default_from_email,
        # the relay's limits: an empty field is no limit (connections: the default)
        "maxPerSecond": _number(max_per_second, None),
        "maxPerHour": _number(max_per_hour, None),
        "maxConnections": _number(max_connections, DEFAULT_MAX_CONNECTIONS),
        "bounceAddress": bounce_address,
        "softBounceLimit": _number(soft_bounce_limit, DEFAULT_SOFT_BOUNCE_LIMIT),
        **inbound_form.entered(inbound),
    }
    shown = {
        **entered,
        "password": None,
        "port": port,
        "maxPerSecond": max_per_second,
        "maxPerHour": max_per_hour,
        "maxConnections": max_connections,
        "softBounceLimit": soft_bounce_limit,
        **inbound_form.shown(inbound),
    }
    try:
        data = EmailConfigIn.model_validate(entered)
        service.save_config(session, settings, principal.org_id, data, actor=audit.actor(principal))
    except ValidationError as exc:
        errors = pydantic_errors(exc)
        return _render(request, principal, session, values=shown, errors=errors, status=422)
    except Conflict as exc:  # another org's bounce address
        errors = field_errors(exc, conflict_field="bounceAddress")
        return _render(request, principal, session, values=shown, errors=errors, status=409)
    except ValidationFailed as exc:  # a host the egress rule refuses
        errors = field_errors(exc)
        return _render(request, principal, session, values=shown, errors=errors, status=422)
    return redirect("/settings/email?saved=1")


@router.post(
    "/settings/email/webhook-key", response_model=None, dependencies=[Depends(verify_csrf)]
)
def regenerate_webhook_key(
    request: Request, principal: Admin, session: Db, settings: AppSettings
) -> HTMLResponse | RedirectResponse:
    try:
        inbound.regenerate_webhook_key(
            session, settings, principal.org_id, actor=audit.actor(principal)
        )
    except Conflict as exc:  # nothing saved yet
        return _render(request, principal, session, errors={"form": exc.message}, status=409)
    return redirect("/settings/email?regenerated=1")


@router.post(
    "/settings/email/test", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)]
)
def send_test_email(
    request: Request,
    principal: Admin,
    session: Db,
    settings: AppSettings,
    to: Annotated[str, Form(max_length=400)] = "",
) -> HTMLResponse:
    test: dict[str, Any] = {"to": to}
    try:
        address = TestMessageIn(to=to).to
        account = service.load_mail_account(session, settings, principal.org_id)
        testmail.take_test_allowance(settings, principal.org_id)
    except ValidationError as exc:
        test["fieldError"] = pydantic_errors(exc).get("to", "Enter a valid email address.")
        return _render(request, principal, session, test=test, status=422)
    except HeraldError as exc:  # not configured, unreadable password, rate limited
        test["error"] = exc.message
        return _render(request, principal, session, test=test, status=exc.status)
    # Nothing to write: end the transaction (and SQLite's write lock) before talking SMTP.
    session.rollback()
    try:
        reply = anyio.from_thread.run(testmail.send_test_message, account, address)
    except SmtpFailed as exc:
        test["error"] = exc.message
        test["code"] = exc.details["smtpCode"]
        test["text"] = exc.details["smtpMessage"]
        return _render(request, principal, session, test=test, status=exc.status)
    except HeraldError as exc:  # the host now resolves to a refused address, a bad address
        test["error"] = exc.message
        return _render(request, principal, session, test=test, status=exc.status)
    test.update(ok=True, code=reply.code, text=reply.text)
    return _render(request, principal, session, test=test)
