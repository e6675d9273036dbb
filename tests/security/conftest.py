"""Shared fixtures for the security suite: three orgs and the six callers the route matrix
and the CSRF tests play, an SMTP server on loopback for the orgs' settings, a clean queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import update

from herald.db import unit_of_work
from herald.orgs.models import Org
from herald.runtime import Runtime
from tests.orgs.factories import SeededUser, login, make_org, make_user
from tests.smtp_server import SmtpServer
from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server
from tests.test_tenancy import MAKERS

# The double-submit CSRF token (herald/web/csrf.py): any value works as long as the
# herald_csrf cookie and the form's csrf_token field carry the same one.
CSRF = "security-suite-csrf-token"


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Sends a test queues (a resend, a launch) are retired, so no later worker mails them."""


@dataclass
class OrgIds:
    """An org whose ADMIN makes fresh ids (tests.test_tenancy.MAKERS) for the callers that
    use this org's ids. Without the licence, campaigns and sends cannot be made through the
    API: those were made while it still had it, and are reused (no caller may change them)."""

    admin: dict[str, str]
    licensed: bool
    kept: dict[str, str] = field(default_factory=dict)
    _shared: dict[str, str] = field(default_factory=dict)

    def fresh(self, client: httpx.Client, runtime: Runtime, param: str) -> str:
        if param in self.kept:
            return self.kept[param]
        return MAKERS[param](client, self.admin, runtime)

    def shared(self, client: httpx.Client, runtime: Runtime, param: str) -> str:
        """One id per kind for requests that change nothing (GETs), made once."""
        if param not in self._shared:
            self._shared[param] = self.fresh(client, runtime, param)
        return self._shared[param]


@dataclass
class Caller:
    name: str
    token: str | None
    ids: OrgIds
    """Whose ids this caller's requests carry."""
    role: str | None = None
    licensed: bool = True
    foreign: bool = False
    """True for another org's ADMIN, who uses the first org's ids."""

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def page_headers(self, csrf: str | None = CSRF) -> dict[str, str]:
        cookies = []
        if self.token:
            cookies.append(f"herald_access={self.token}")
        if csrf:
            cookies.append(f"herald_csrf={csrf}")
        headers = {"Accept": "text/html"}
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        return headers


CALLER_NAMES = ("anonymous", "USER", "MANAGER", "ADMIN", "other_org_ADMIN", "unlicensed_ADMIN")


def smtp_settings(port: int) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "",
        "defaultFromName": "Security suite",
        "defaultFromEmail": "news@security.example.com",
    }


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.fixture(scope="module")
def module_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def callers(live_server, runtime, module_smtp) -> dict[str, Caller]:
    """Org A (licensed) with a USER, a MANAGER and an ADMIN; org B (licensed) with an ADMIN
    who uses A's ids; org C without the `marketing` licence, with an ADMIN and its own ids.
    Every org's SMTP settings point at a loopback server, so launches and test messages work."""
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        org_a, org_b, org_c = make_org(runtime), make_org(runtime), make_org(runtime)
        a = {
            role: login(c, make_user(runtime, org_a, role)) for role in ("ADMIN", "MANAGER", "USER")
        }
        b_admin = login(c, make_user(runtime, org_b, "ADMIN"))
        c_admin = login(c, make_user(runtime, org_c, "ADMIN"))
        for headers in (a["ADMIN"], b_admin, c_admin):
            response = c.put(
                "/api/settings/email", headers=headers, json=smtp_settings(module_smtp.port)
            )
            assert response.status_code == 200, response.text
        a_ids = OrgIds(admin=a["ADMIN"], licensed=True)
        c_ids = OrgIds(admin=c_admin, licensed=False)
        c_ids.kept = {
            p: MAKERS[p](c, c_admin, runtime) for p in ("campaign_id", "send_id", "report_id")
        }
    revoke_licence(runtime, org_c.id)
    return {
        "anonymous": Caller("anonymous", None, a_ids),
        "USER": Caller("USER", _token(a["USER"]), a_ids, role="USER"),
        "MANAGER": Caller("MANAGER", _token(a["MANAGER"]), a_ids, role="MANAGER"),
        "ADMIN": Caller("ADMIN", _token(a["ADMIN"]), a_ids, role="ADMIN"),
        "other_org_ADMIN": Caller(
            "other_org_ADMIN", _token(b_admin), a_ids, role="ADMIN", foreign=True
        ),
        "unlicensed_ADMIN": Caller(
            "unlicensed_ADMIN", _token(c_admin), c_ids, role="ADMIN", licensed=False
        ),
    }


def revoke_licence(runtime: Runtime, org_id: uuid.UUID) -> None:
    with unit_of_work(runtime.sessions) as session:
        session.execute(update(Org).where(Org.id == org_id).values(features=[]))


def cookie_values(response: httpx.Response) -> dict[str, str]:
    """name -> value of every Set-Cookie (read from the headers: a Secure cookie is not kept
    by httpx's jar over the plain-http test server)."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0].strip('"')
    return found


def set_cookie_headers(response: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie header, for checking its attributes."""
    return {h.partition("=")[0]: h for h in response.headers.get_list("set-cookie")}


def page_login(client: httpx.Client, user: SeededUser, mfa_code: str = "") -> httpx.Response:
    """Log in through the login page as a browser does (its form, its CSRF cookie)."""
    form = client.get("/login")
    csrf = cookie_values(form)["herald_csrf"]
    client.cookies.clear()
    return client.post(
        "/login",
        data={
            "csrf_token": csrf,
            "email": user.email,
            "password": user.password,
            "mfa_code": mfa_code,
            "next": "/",
        },
        headers={"Cookie": f"herald_csrf={csrf}", "Accept": "text/html"},
    )


def page_session(client: httpx.Client, user: SeededUser) -> dict[str, str]:
    """The session cookies (herald_access, herald_refresh) of a page login."""
    response = page_login(client, user)
    assert response.status_code == 303, response.text
    return cookie_values(response)


def page_logout(client: httpx.Client, csrf: str, session: dict[str, str]) -> httpx.Response:
    """The Log out form's post, carrying the page session's cookies and its CSRF token."""
    client.cookies.clear()
    return client.post(
        "/logout",
        data={"csrf_token": csrf},
        headers={
            "Cookie": f"herald_csrf={csrf}; herald_access={session['herald_access']}; "
            f"herald_refresh={session['herald_refresh']}"
        },
    )
