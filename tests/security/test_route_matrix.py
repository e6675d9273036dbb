"""Every route of the app x six callers → the status the contract's access rules give.

The routes are walked from the app itself (API and pages, every method). Each one needs a
rule in ``RULES`` or a reason in ``SKIPPED``: a new route without either fails the suite,
so nothing slips through unreviewed. Ids are real: each caller's requests carry ids of its
own org (fresh ones for requests that may change them), except another org's ADMIN, who
carries the first org's ids and must get 404.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.security.conftest import CALLER_NAMES, CSRF, Caller, smtp_settings
from tests.test_tenancy import BODIES


class Rule(enum.Enum):
    """Who may call a route (CONTRACT.md, "Roles and licence")."""

    ANYONE = "anyone, logged in or not"
    LOGGED_IN = "any logged-in user, about themselves"
    CRM_READ = "every role"
    CRM_WRITE = "ADMIN or MANAGER"
    MARKETING_READ = "licence `marketing` and ADMIN or MANAGER"
    MARKETING_WRITE = "licence `marketing` and ADMIN"
    SETTINGS = "ADMIN"
    CRM_ADMIN = "ADMIN (resetting a contact's email status)"


ROLES = {
    Rule.ANYONE: {"USER", "MANAGER", "ADMIN"},
    Rule.LOGGED_IN: {"USER", "MANAGER", "ADMIN"},
    Rule.CRM_READ: {"USER", "MANAGER", "ADMIN"},
    Rule.CRM_WRITE: {"MANAGER", "ADMIN"},
    Rule.MARKETING_READ: {"MANAGER", "ADMIN"},
    Rule.MARKETING_WRITE: {"ADMIN"},
    Rule.SETTINGS: {"ADMIN"},
    Rule.CRM_ADMIN: {"ADMIN"},
}

# Routes this matrix does not call, and why.
SKIPPED: dict[tuple[str, str], str] = {
    ("GET", "/static/{path}"): "static files, public by design",
    ("GET", "/api/openapi.json"): "the public API description (tests/test_openapi.py)",
    ("GET", "/api/docs"): "the public Swagger page for the API description",
    ("GET", "/api/docs/assets/{path}"): "Swagger UI's static files, public by design",
    ("GET", "/healthz"): "public health check (tests/test_health.py)",
    ("GET", "/login"): "the login page is public (tests/web, tests/browser)",
    ("POST", "/login"): "public login form (tests/security/test_totp.py, test_csrf_and_cookies.py)",
    ("POST", "/api/auth/login"): "public login (tests/auth/test_login.py)",
    ("POST", "/api/auth/refresh"): "cookie-authenticated (tests/auth/test_refresh.py, "
    "tests/security/test_tokens.py)",
    (
        "POST",
        "/api/auth/logout",
    ): "cookie-authenticated, 204 for anyone (tests/auth/test_refresh.py)",
    ("POST", "/api/auth/sessions/revoke"): "signs the caller out everywhere, which would end "
    "the matrix's own sessions (tests/security/test_sessions.py, anonymous included)",
    ("POST", "/api/auth/password"): "changes the caller's password and ends their sessions "
    "(tests/security/test_sessions.py, anonymous included)",
    ("POST", "/settings/account/password"): "as POST /api/auth/password, for the page "
    "(tests/security/test_sessions.py)",
    ("POST", "/settings/account/sessions/revoke"): "as POST /api/auth/sessions/revoke, for the "
    "page (tests/security/test_sessions.py)",
    ("GET", "/t/{name}"): "public open pixel (tests/security/test_public_tokens.py)",
    ("GET", "/u/{token}"): "public unsubscribe page (tests/security/test_public_tokens.py)",
    ("POST", "/u/{token}"): "public RFC 8058 one-click (tests/security/test_public_tokens.py)",
    ("GET", "/c/{token}/{n}"): "public tracked link (tests/security/test_public_tokens.py, "
    "tests/marketing/test_clicks.py)",
    ("POST", "/webhooks/{provider}/{webhook_key}"): "mail services' webhooks, authenticated "
    "by the key and each service's signature (tests/bounces/test_webhooks.py, test_sns.py)",
}

RULES: dict[tuple[str, str], Rule] = {
    # auth: about the caller themselves
    ("GET", "/api/auth/me"): Rule.LOGGED_IN,
    ("POST", "/api/auth/mfa/setup"): Rule.LOGGED_IN,
    ("POST", "/api/auth/mfa/enable"): Rule.LOGGED_IN,
    # CRM API
    ("GET", "/api/crm/statuses"): Rule.CRM_READ,
    ("GET", "/api/crm/contacts"): Rule.CRM_READ,
    ("GET", "/api/crm/contacts/{contact_id}"): Rule.CRM_READ,
    ("POST", "/api/crm/contacts"): Rule.CRM_WRITE,
    ("PATCH", "/api/crm/contacts/{contact_id}"): Rule.CRM_WRITE,
    ("DELETE", "/api/crm/contacts/{contact_id}"): Rule.CRM_WRITE,
    ("POST", "/api/crm/contacts/import"): Rule.CRM_WRITE,
    # settings API
    ("GET", "/api/settings/email"): Rule.SETTINGS,
    ("PUT", "/api/settings/email"): Rule.SETTINGS,
    ("POST", "/api/settings/email/test"): Rule.SETTINGS,
    ("POST", "/api/settings/email/webhook-key"): Rule.SETTINGS,
    ("GET", "/api/settings/users"): Rule.SETTINGS,
    ("POST", "/api/settings/users"): Rule.SETTINGS,
    ("PATCH", "/api/settings/users/{user_id}"): Rule.SETTINGS,
    ("GET", "/api/settings/audit"): Rule.SETTINGS,
    # marketing API: every write (POST included, even the audience count) is ADMIN-only
    ("GET", "/api/marketing/access"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns/{campaign_id}"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns/{campaign_id}/stats"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns/{campaign_id}/links"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns/{campaign_id}/sends"): Rule.MARKETING_READ,
    ("GET", "/api/marketing/campaigns/{campaign_id}/sends.csv"): Rule.MARKETING_READ,
    ("POST", "/api/marketing/campaigns"): Rule.MARKETING_WRITE,
    ("PATCH", "/api/marketing/campaigns/{campaign_id}"): Rule.MARKETING_WRITE,
    ("PUT", "/api/marketing/campaigns/{campaign_id}"): Rule.MARKETING_WRITE,
    ("DELETE", "/api/marketing/campaigns/{campaign_id}"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/launch"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/duplicate"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/test"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/audience/count"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/sends/{send_id}/resend"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/schedule"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/unschedule"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/pause"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/resume"): Rule.MARKETING_WRITE,
    ("POST", "/api/marketing/campaigns/{campaign_id}/cancel"): Rule.MARKETING_WRITE,
    # bounces: the list is a read; a raw report (it quotes the message) is ADMIN's, like writes
    ("GET", "/api/marketing/bounces"): Rule.MARKETING_READ,
    ("POST", "/api/marketing/bounces"): Rule.MARKETING_WRITE,
    ("GET", "/api/marketing/bounces/{report_id}/raw"): Rule.MARKETING_WRITE,
    # pages: the front door, logout, the caller's own account
    ("GET", "/"): Rule.LOGGED_IN,
    ("POST", "/logout"): Rule.ANYONE,
    ("GET", "/settings"): Rule.LOGGED_IN,
    ("GET", "/settings/account"): Rule.LOGGED_IN,
    ("POST", "/settings/account/mfa/setup"): Rule.LOGGED_IN,
    ("POST", "/settings/account/mfa/enable"): Rule.LOGGED_IN,
    # CRM pages; a write form's page follows the write rule, except the import page,
    # which every role sees (with the form disabled and the reason for a USER)
    ("GET", "/crm"): Rule.CRM_READ,
    ("GET", "/crm/contacts"): Rule.CRM_READ,
    ("GET", "/crm/contacts/{contact_id}"): Rule.CRM_READ,
    ("GET", "/crm/import"): Rule.CRM_READ,
    ("GET", "/crm/contacts/new"): Rule.CRM_WRITE,
    ("POST", "/crm/contacts/new"): Rule.CRM_WRITE,
    ("POST", "/crm/contacts/{contact_id}"): Rule.CRM_WRITE,
    ("POST", "/crm/contacts/{contact_id}/delete"): Rule.CRM_WRITE,
    ("POST", "/crm/import"): Rule.CRM_WRITE,
    ("POST", "/crm/contacts/{contact_id}/email-status"): Rule.CRM_ADMIN,
    # settings pages
    ("GET", "/settings/email"): Rule.SETTINGS,
    ("POST", "/settings/email"): Rule.SETTINGS,
    ("POST", "/settings/email/test"): Rule.SETTINGS,
    ("POST", "/settings/email/webhook-key"): Rule.SETTINGS,
    ("GET", "/settings/users"): Rule.SETTINGS,
    ("POST", "/settings/users"): Rule.SETTINGS,
    ("POST", "/settings/users/{user_id}/role"): Rule.SETTINGS,
    ("GET", "/settings/audit"): Rule.SETTINGS,
    # marketing pages; the form's live audience count is a read that POSTs (for its CSRF
    # token) and changes nothing; the form pages themselves are ADMIN-only
    ("GET", "/marketing"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/{campaign_id}"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/{campaign_id}/stats.json"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/{campaign_id}/preview"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/{campaign_id}/log"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/{campaign_id}/sends.csv"): Rule.MARKETING_READ,
    ("POST", "/marketing/audience-count.json"): Rule.MARKETING_READ,
    ("GET", "/marketing/campaigns/new"): Rule.MARKETING_WRITE,
    ("GET", "/marketing/campaigns/{campaign_id}/edit"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/edit"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/launch"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/duplicate"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/delete"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/test"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/sends/{send_id}/resend"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/schedule"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/unschedule"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/pause"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/resume"): Rule.MARKETING_WRITE,
    ("POST", "/marketing/campaigns/{campaign_id}/cancel"): Rule.MARKETING_WRITE,
    ("GET", "/marketing/bounces"): Rule.MARKETING_READ,
    ("GET", "/marketing/bounces/{report_id}/raw"): Rule.MARKETING_WRITE,
}

# What an allowed caller gets when it is not simply a success (2xx, or a page's 303 to
# somewhere other than the login page).
LOGIN = "303 to /login"
ALLOWED_OTHERWISE: dict[tuple[str, str], set[int] | str] = {
    # the wrong code is sent on purpose: MFA must stay off for the callers
    ("POST", "/api/auth/mfa/enable"): {422},
    ("POST", "/settings/account/mfa/enable"): {422},
    ("POST", "/logout"): LOGIN,
    # the matrix's campaigns are fresh DRAFTs: these change only a campaign in another status
    ("POST", "/api/marketing/campaigns/{campaign_id}/unschedule"): {409},
    ("POST", "/api/marketing/campaigns/{campaign_id}/pause"): {409},
    ("POST", "/api/marketing/campaigns/{campaign_id}/resume"): {409},
    ("POST", "/api/marketing/campaigns/{campaign_id}/cancel"): {409},
}

PROBE_ADDRESS = "probe@security.example.com"


def tomorrow() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()


def unique_email() -> str:
    return f"m-{uuid.uuid4().hex[:10]}@matrix.example"


def api_body(method: str, path: str, smtp_port: int) -> dict[str, Any]:
    """The keyword arguments (json or files) that make an allowed call succeed."""
    bodies: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("POST", "/api/auth/mfa/enable"): lambda: {"code": "000000"},
        ("POST", "/api/crm/contacts"): lambda: {"email": unique_email(), "firstName": "New"},
        ("PUT", "/api/settings/email"): lambda: smtp_settings(smtp_port),
        ("POST", "/api/settings/email/test"): lambda: {"to": PROBE_ADDRESS},
        ("POST", "/api/marketing/campaigns/{campaign_id}/test"): lambda: {"to": [PROBE_ADDRESS]},
        ("POST", "/api/settings/users"): lambda: {
            "email": unique_email(),
            "password": "p" * 12,
            "role": "USER",
        },
        ("POST", "/api/marketing/campaigns"): lambda: {
            "name": "Matrix",
            "subject": "Hello",
            "audience": {"type": "STATUS", "statuses": ["INACTIVE"]},
        },
        ("POST", "/api/marketing/audience/count"): lambda: {"audience": {"type": "ALL"}},
        ("POST", "/api/marketing/campaigns/{campaign_id}/schedule"): lambda: {"at": tomorrow()},
        ("POST", "/api/marketing/bounces"): lambda: {"email": unique_email(), "type": "soft"},
    }
    if (method, path) == ("POST", "/api/crm/contacts/import"):
        csv = f"email,firstName\n{unique_email()},Imported\n".encode()
        return {"files": {"file": ("contacts.csv", csv, "text/csv")}}
    if (method, path) in bodies:
        return {"json": bodies[(method, path)]()}
    if (method, path) in BODIES:
        return {"json": BODIES[(method, path)]}
    return {}


def page_form(method: str, path: str, smtp_port: int) -> dict[str, Any]:
    """The form a browser would post (plus the CSRF token), as httpx keyword arguments."""
    campaign = {
        "name": "Matrix",
        "subject": "Hello",
        "audience_type": "STATUS",
        "statuses": "INACTIVE",
    }
    smtp = smtp_settings(smtp_port)
    forms: dict[str, dict[str, Any]] = {
        "/marketing/campaigns": campaign,
        "/marketing/campaigns/{campaign_id}/edit": campaign,
        "/marketing/audience-count.json": {"audience_type": "ALL"},
        "/marketing/campaigns/{campaign_id}/test": {"to": PROBE_ADDRESS},
        "/marketing/campaigns/{campaign_id}/schedule": {"at": tomorrow()},
        "/crm/contacts/new": {"email": unique_email(), "first_name": "New", "status": "LEAD"},
        "/crm/contacts/{contact_id}": {
            "email": unique_email(),
            "first_name": "Edited",
            "status": "LEAD",
        },
        "/settings/email": {
            "host": smtp["host"],
            "port": str(smtp["port"]),
            "security": smtp["security"],
            "username": "",
            "default_from_name": smtp["defaultFromName"],
            "default_from_email": smtp["defaultFromEmail"],
        },
        "/settings/email/test": {"to": PROBE_ADDRESS},
        "/settings/users": {"email": unique_email(), "password": "p" * 12, "role": "USER"},
        "/settings/users/{user_id}/role": {"role": "MANAGER"},
        "/settings/account/mfa/enable": {"code": "000000"},
    }
    data = {**forms.get(path, {}), "csrf_token": CSRF}
    if path == "/crm/import":
        csv = f"email,first_name\n{unique_email()},Imported\n".encode()
        return {"data": data, "files": {"file": ("contacts.csv", csv, "text/csv")}}
    return {"data": data}


def app_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) for every route the app serves, HEAD aside (it follows GET)."""
    for route in iter_route_contexts(app.routes):
        methods = getattr(route, "methods", None) or {"GET"}  # a Mount serves GETs
        for method in sorted(methods - {"HEAD"}):
            yield method, route.path_format


def is_page(path: str) -> bool:
    return not path.startswith("/api/")


def expected(caller: Caller, method: str, path: str, rule: Rule) -> set[int] | str:
    """The status (or LOGIN, or "ok") the rules give this caller on this route."""
    allowed = ALLOWED_OTHERWISE.get((method, path), "ok")
    if rule is Rule.ANYONE:
        return allowed
    if caller.token is None:
        return LOGIN if is_page(path) else {401}
    if rule in (Rule.MARKETING_READ, Rule.MARKETING_WRITE) and not caller.licensed:
        return {403}
    if caller.role not in ROLES[rule]:
        return {403}
    if caller.foreign and "{" in path:
        return {404}
    return allowed


def verdict(response: httpx.Response, path: str, want: set[int] | str) -> str | None:
    """None when the response is what was wanted, else what was wrong."""
    status = response.status_code
    location = response.headers.get("location", "")
    if want == LOGIN:
        ok = status == 303 and location.startswith("/login")
    elif want == "ok":
        ok = 200 <= status < 300 or (
            is_page(path) and status == 303 and not location.startswith("/login")
        )
    else:
        assert isinstance(want, set)
        ok = status in want
        if ok and status >= 400:  # a refusal in the right form: an error page or the error shape
            if is_page(path):
                ok = response.headers.get("content-type", "").startswith("text/html")
            else:
                ok = "error" in response.json()
    if ok:
        return None
    shown = f"{status} {location}".strip()
    return f"wanted {want}, got {shown}: {response.text[:160]!r}"


def call(
    client: httpx.Client, runtime: Any, caller: Caller, method: str, path: str, smtp_port: int
) -> httpx.Response:
    params = re.findall(r"\{([^}]+)\}", path)
    make = caller.ids.shared if method == "GET" else caller.ids.fresh
    url = path.format(**{p: make(client, runtime, p) for p in params})
    client.cookies.clear()  # only what the caller sends, never a cookie picked up on the way
    if is_page(path):
        kwargs = page_form(method, path, smtp_port) if method == "POST" else {}
        return client.request(method, url, headers=caller.page_headers(), **kwargs)
    return client.request(
        method, url, headers=caller.api_headers(), **api_body(method, path, smtp_port)
    )


def test_every_route_has_a_rule_or_a_reason_to_skip_it(live_server):
    routes = set(app_routes(live_server.server.config.app))
    unruled = sorted(routes - RULES.keys() - SKIPPED.keys())
    assert not unruled, f"new routes need a rule in RULES (or a reason in SKIPPED): {unruled}"
    stale = sorted((RULES.keys() | SKIPPED.keys()) - routes)
    assert not stale, f"rules for routes the app no longer serves: {stale}"
    assert not RULES.keys() & SKIPPED.keys()


@pytest.mark.parametrize("caller_name", CALLER_NAMES)
def test_every_route_answers_each_caller_as_the_rules_say(
    caller_name, callers, live_server, runtime, module_smtp
):
    caller = callers[caller_name]
    mismatches: list[str] = []
    checked = 0
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        for method, path in app_routes(live_server.server.config.app):
            if (method, path) in SKIPPED:
                continue
            rule = RULES.get((method, path))
            if rule is None:
                mismatches.append(f"{method} {path}: no rule")
                continue
            want = expected(caller, method, path, rule)
            response = call(client, runtime, caller, method, path, module_smtp.port)
            problem = verdict(response, path, want)
            if problem:
                mismatches.append(f"{method} {path} [{rule.name}]: {problem}")
            checked += 1
    print(f"{caller_name}: {checked} routes checked")
    assert checked == len(RULES)
    assert not mismatches, f"{caller_name}:\n" + "\n".join(mismatches)
