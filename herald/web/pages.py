"""Rendering pages: the layout's context, security headers, and the CSRF cookie."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from herald.auth.access import Capability, allows
from herald.auth.deps import Principal
from herald.errors import Conflict, HeraldError
from herald.runtime import get_runtime
from herald.web.csrf import CSRF_COOKIE, csrf_token
from herald.web.templating import csp_header, new_nonce, templates


def render(
    request: Request,
    template: str,
    principal: Principal | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    nonce = new_nonce()
    settings = get_runtime(request).settings
    values: dict[str, Any] = {
        "nonce": nonce,
        "csrf_token": csrf_token(request),
        "me": principal,
        "nav": navigation(principal, inbox=settings.env == "dev") if principal else [],
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, template, values, status_code=status)
    secure_headers(response, nonce)
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            new,
            httponly=True,
            samesite="strict",
            path="/",
            secure=settings.https,  # like the session cookies
        )
    return response


def secure_headers(response: HTMLResponse | RedirectResponse, nonce: str) -> None:
    response.headers["Content-Security-Policy"] = csp_header(nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"


def navigation(principal: Principal, inbox: bool = False) -> list[dict[str, str]]:
    """The sidebar: Marketing only with the licence and the role; Settings for everyone
    (My account), its admin pages for ADMINs; in dev mode, the local Inbox."""
    items = [{"label": "CRM", "href": "/crm/contacts", "key": "crm"}]
    if allows(principal, Capability.MARKETING_READ):
        items.append({"label": "Marketing", "href": "/marketing", "key": "marketing"})
    items.append({"label": "Settings", "href": "/settings", "key": "settings"})
    if inbox:
        items.append({"label": "Inbox", "href": "/dev/inbox", "key": "dev"})
    return items


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def field_errors(exc: HeraldError, conflict_field: str | None = None) -> dict[str, str]:
    """A service error as messages by form field (JSON names), for inline display.

    ValidationFailed names its fields in ``details``; a Conflict (e.g. an email already
    taken) goes to ``conflict_field``; anything else to the whole form (key ``form``).
    """
    if isinstance(exc, Conflict) and conflict_field:
        return {conflict_field: exc.message}
    errors: dict[str, str] = {}
    for item in exc.details if isinstance(exc.details, list) else []:
        if isinstance(item, dict) and item.get("field"):
            errors.setdefault(str(item["field"]), str(item.get("message", "")))
    return errors or {"form": exc.message}
