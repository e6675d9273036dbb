"""Cross-site requests: every page form refuses a post without the right CSRF token or from
another origin, and nothing changes; the session cookies carry the flags the design names;
the JSON API never takes a cookie for a login.

tests/web/test_session.py shows one form refusing a foreign Origin and a missing token,
and /api/auth/me ignoring the page cookie; here every form and every API route is walked.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from herald.marketing.models import Campaign, MarketingSend
from herald.orgs.models import User
from tests.orgs.factories import PASSWORD, make_org, make_user
from tests.security.conftest import (
    CSRF,
    cookie_values,
    page_login,
    page_logout,
    set_cookie_headers,
)
from tests.security.test_route_matrix import SKIPPED, app_routes, is_page, page_form
from tests.test_tenancy import MAKERS

# Page POSTs that take no CSRF token, by design.
NO_CSRF = {
    "/u/{token}": "RFC 8058 one-click unsubscribe: mail clients post it without any page, "
    "cookie or token; it only ever opts the link's own contact out",
    "/webhooks/{provider}/{webhook_key}": "mail services' webhooks: no page, no cookie; each "
    "call carries the service's signature or credentials (tests/bounces)",
}

FORGERIES = {
    "no token": lambda: ({"herald_csrf": CSRF}, {}, {}),
    "no cookie": lambda: ({}, {"csrf_token": CSRF}, {}),
    "wrong token": lambda: ({"herald_csrf": CSRF}, {"csrf_token": CSRF + "x"}, {}),
    "another site's origin": lambda: (
        {"herald_csrf": CSRF},
        {"csrf_token": CSRF},
        {"Origin": "https://evil.example"},
    ),
    "an opaque origin": lambda: ({"herald_csrf": CSRF}, {"csrf_token": CSRF}, {"Origin": "null"}),
    "a look-alike origin": lambda: (
        {"herald_csrf": CSRF},
        {"csrf_token": CSRF},
        {"Origin": "https://herald.test.evil.example"},
    ),
}


def page_posts(app) -> list[str]:
    return sorted(
        path
        for method, path in app_routes(app)
        if method == "POST" and is_page(path) and path not in NO_CSRF
    )


def snapshot(runtime, org_id: uuid.UUID, ids: dict[str, str]) -> dict[str, object]:
    """What a forged post could have changed, one fact per area."""
    with unit_of_work(runtime.sessions, write=False) as s:
        campaign = s.get(Campaign, uuid.UUID(ids["campaign_id"]))
        send = s.get(MarketingSend, int(ids["send_id"]))
        contact = s.get(Contact, uuid.UUID(ids["contact_id"]))
        user = s.get(User, uuid.UUID(ids["user_id"]))
        config = s.scalars(select(EmailConfig).where(EmailConfig.org_id == org_id)).one()

        def count(model) -> int:
            return int(s.scalar(select(func.count()).where(model.org_id == org_id)) or 0)

        admin_mfa = s.scalars(
            select(User.mfa_secret).where(User.org_id == org_id, User.role == "ADMIN")
        ).all()
        return {
            "campaign": campaign and (campaign.status, campaign.name),
            "campaigns": count(Campaign),
            "send": send and send.status,
            "contact": contact and (contact.email, contact.first_name, contact.status),
            "contacts": count(Contact),
            "user": user and user.role,
            "users": count(User),
            "smtp": (config.host, config.port, config.default_from_email),
            "mfa set up": [secret is not None for secret in admin_mfa],
        }


@pytest.mark.parametrize("forgery", FORGERIES)
def test_every_page_form_refuses_a_cross_site_post_and_changes_nothing(
    forgery, callers, live_server, runtime, module_smtp
):
    admin = callers["ADMIN"]
    app = live_server.server.config.app
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        me = client.get("/api/auth/me", headers=admin.api_headers()).json()["user"]
        org_id = uuid.UUID(me["orgId"])
        ids = {p: MAKERS[p](client, admin.ids.admin, runtime) for p in MAKERS}
        before = snapshot(runtime, org_id, ids)
        mails_before = len(module_smtp.messages)
        refused = []
        accepted = []
        for path in page_posts(app):
            cookies, fields, headers = FORGERIES[forgery]()
            form = page_form("POST", path, module_smtp.port)
            data = {k: v for k, v in form["data"].items() if k != "csrf_token"} | fields
            if path in ("/login",):
                data |= {"email": me["email"], "password": PASSWORD}
            cookie = "; ".join(
                [f"herald_access={admin.token}"] + [f"{k}={v}" for k, v in cookies.items()]
            )
            client.cookies.clear()
            response = client.post(
                path.format(**ids),
                data=data,
                files=form.get("files"),
                headers={"Cookie": cookie, "Accept": "text/html", **headers},
            )
            # a refusal, and no session handed out (a fresh CSRF cookie for the reload is fine)
            if response.status_code == 403 and set(cookie_values(response)) <= {"herald_csrf"}:
                refused.append(path)
            else:
                accepted.append(f"{path}: {response.status_code} {response.text[:120]!r}")
    assert not accepted, f"{forgery} accepted by:\n" + "\n".join(accepted)
    assert len(refused) >= 20
    assert snapshot(runtime, org_id, ids) == before
    assert len(module_smtp.messages) == mails_before
    print(f"{forgery}: {len(refused)} page forms refused")


def test_a_real_form_post_with_the_token_goes_through(callers, live_server, runtime):
    """The control for the test above: the same post with the right token works."""
    admin = callers["ADMIN"]
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        campaign_id = MAKERS["campaign_id"](client, admin.ids.admin, runtime)
        response = client.post(
            f"/marketing/campaigns/{campaign_id}/delete",
            data={"csrf_token": CSRF},
            headers=admin.page_headers(),
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/marketing?notice=deleted"
        gone = client.get(f"/api/marketing/campaigns/{campaign_id}", headers=admin.api_headers())
        assert gone.status_code == 404


def test_a_forged_login_post_sets_no_session(client, runtime):
    user = make_user(runtime, make_org(runtime))
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "next": "/"},
        headers={"Accept": "text/html", "Cookie": f"herald_csrf={CSRF}"},
    )
    assert response.status_code == 403
    assert "herald_access" not in response.headers.get("set-cookie", "")


def assert_flags(header: str, path: str, secure: bool) -> None:
    attributes = [a.strip().lower() for a in header.split(";")[1:]]
    assert "httponly" in attributes, header
    assert "samesite=strict" in attributes, header
    assert f"path={path}" in attributes, header
    assert ("secure" in attributes) is secure, header


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_every_cookie_carries_its_flags(start_server, runtime, scheme):
    """herald_csrf, herald_access, herald_refresh (Path=/, set and cleared) and the API's
    refreshToken (Path=/api/auth, set, rotated and cleared): HttpOnly, SameSite=Strict, and
    Secure exactly when HERALD_BASE_URL is https."""
    secure = scheme == "https"
    server = start_server(base_url=f"{scheme}://herald.example")
    user = make_user(runtime, make_org(runtime), "ADMIN")
    seen: dict[str, list[str]] = {}
    with httpx.Client(base_url=server.url) as c:
        form = c.get("/login")
        seen.setdefault("herald_csrf", []).append(set_cookie_headers(form)["herald_csrf"])
        c.cookies.clear()
        logged_in = page_login(c, user)
        assert logged_in.status_code == 303
        for name, header in set_cookie_headers(logged_in).items():
            seen.setdefault(name, []).append(header)
        session = cookie_values(logged_in)
        csrf = cookie_values(form)["herald_csrf"]
        out = page_logout(c, csrf, session)
        for name, header in set_cookie_headers(out).items():
            seen.setdefault(name, []).append(header)

        api = c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        token = cookie_values(api)["refreshToken"]
        c.cookies.clear()
        rotated = c.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={token}"})
        assert rotated.status_code == 200
        new = cookie_values(rotated)["refreshToken"]
        c.cookies.clear()
        api_out = c.post("/api/auth/logout", headers={"Cookie": f"refreshToken={new}"})
        for response in (api, rotated, api_out):
            seen.setdefault("refreshToken", []).append(set_cookie_headers(response)["refreshToken"])

    assert set(seen) == {"herald_csrf", "herald_access", "herald_refresh", "refreshToken"}
    assert len(seen["herald_access"]) == len(seen["herald_refresh"]) == 2  # set, cleared
    for name, headers in seen.items():
        for header in headers:
            assert_flags(header, "/api/auth" if name == "refreshToken" else "/", secure)


def test_the_json_api_never_takes_a_cookie_for_a_login(client, callers, live_server):
    """Every API route that needs a login answers 401 to a request carrying every cookie a
    logged-in ADMIN's browser holds (and look-alikes), but no Authorization header."""
    token = callers["ADMIN"].token
    cookies = (
        f"herald_access={token}; herald_refresh=x; refreshToken=x; herald_csrf={CSRF}; "
        f"accessToken={token}; Authorization=Bearer%20{token}"
    )
    checked = 0
    for method, path in app_routes(live_server.server.config.app):
        if is_page(path) or (method, path) in SKIPPED:
            continue
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        client.cookies.clear()
        response = client.request(method, url, headers={"Cookie": cookies})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_authenticated"
        checked += 1
    assert checked >= 30
