"""Sessions end when they should (CONTRACT.md "Sessions and audit"): logout, deactivating a
user, a new role or password, and "Sign out everywhere" stop the user's refresh tokens at
once, pages included (the pages' silent refresh too), and their access tokens with them; a
reactivated user logs in again. Password change: wrong current password or a short new one
is a 422 in the error shape."""

from __future__ import annotations

import httpx

from tests.orgs.factories import PASSWORD, make_org, make_user

CSRF = "sessions-csrf-token"


def log_in(client: httpx.Client, email: str, password: str = PASSWORD) -> tuple[str, str]:
    """(access token, refresh token) of a fresh API login."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["accessToken"], response.cookies["refreshToken"]


def api_status(client: httpx.Client, access: str) -> int:
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {access}"}).status_code


def refresh_status(client: httpx.Client, refresh: str) -> int:
    client.cookies.clear()
    cookie = {"Cookie": f"refreshToken={refresh}"}
    return client.post("/api/auth/refresh", headers=cookie).status_code


def page(client: httpx.Client, **cookies: str) -> httpx.Response:
    client.cookies.clear()
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return client.get("/crm/contacts", headers={"Cookie": header, "Accept": "text/html"})


def set_cookies(response: httpx.Response) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0]
    return found


def signed_out(client: httpx.Client, access: str, refresh: str) -> None:
    assert api_status(client, access) == 401
    assert refresh_status(client, refresh) == 401
    assert page(client, herald_access=access).status_code == 303
    assert page(client, herald_refresh=refresh).status_code == 303


def page_form(client: httpx.Client, path: str, cookies: dict[str, str]) -> httpx.Response:
    """A page's CSRF-protected form post with this session's cookies and nothing else."""
    client.cookies.clear()
    return client.post(
        path,
        data={"csrf_token": CSRF},
        headers={
            "Cookie": f"herald_access={cookies['herald_access']}; "
            f"herald_refresh={cookies['herald_refresh']}; herald_csrf={CSRF}",
            "Accept": "text/html",
        },
    )


def test_a_spent_page_refresh_token_is_dead_after_logout(client, runtime):
    user = make_user(runtime, make_org(runtime), "USER")
    _access, refresh = log_in(client, user.email)
    first = page(client, herald_refresh=refresh)  # silent refresh spends the token
    assert first.status_code == 200
    new = set_cookies(first)
    out = page_form(client, "/logout", new)
    assert out.status_code == 303
    # within the 60 s the silent refresh shares a result, the spent token gets nothing now
    replay = page(client, herald_refresh=refresh)
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/login")


def test_sign_out_everywhere_ends_every_session_at_once(client, runtime):
    user = make_user(runtime, make_org(runtime), "USER")
    (a1, r1), (a2, r2) = log_in(client, user.email), log_in(client, user.email)
    revoked = client.post("/api/auth/sessions/revoke", headers={"Authorization": f"Bearer {a1}"})
    assert revoked.status_code == 204
    signed_out(client, a1, r1)
    signed_out(client, a2, r2)
    again, _ = log_in(client, user.email)
    assert api_status(client, again) == 200


def test_deactivation_and_a_new_role_end_the_sessions(client, runtime):
    org = make_org(runtime)
    admin = {"Authorization": f"Bearer {log_in(client, make_user(runtime, org).email)[0]}"}
    user = make_user(runtime, org, "USER")
    access, refresh = log_in(client, user.email)
    off = client.patch(f"/api/settings/users/{user.id}", json={"isActive": False}, headers=admin)
    assert off.status_code == 200, off.text
    back = client.patch(f"/api/settings/users/{user.id}", json={"isActive": True}, headers=admin)
    assert back.status_code == 200, back.text
    signed_out(client, access, refresh)  # reactivated: the old tokens stay dead

    access, refresh = log_in(client, user.email)
    role = client.patch(f"/api/settings/users/{user.id}", json={"role": "MANAGER"}, headers=admin)
    assert role.status_code == 200, role.text
    signed_out(client, access, refresh)
    assert api_status(client, log_in(client, user.email)[0]) == 200


def test_password_change(client, runtime):
    user = make_user(runtime, make_org(runtime), "USER")
    (access, refresh), (other, other_refresh) = (
        log_in(client, user.email),
        log_in(client, user.email),
    )
    bearer = {"Authorization": f"Bearer {access}"}
    wrong = client.post(
        "/api/auth/password", json={"current": "not it", "new": "a new password"}, headers=bearer
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "wrong_password"
    assert wrong.json()["error"]["details"][0]["field"] == "current"
    short = client.post(
        "/api/auth/password", json={"current": PASSWORD, "new": "short"}, headers=bearer
    )
    assert short.status_code == 422
    assert short.json()["error"]["details"][0]["field"] == "new"
    assert api_status(client, access) == 200  # refusals change nothing

    changed = client.post(
        "/api/auth/password", json={"current": PASSWORD, "new": "a new password"}, headers=bearer
    )
    assert changed.status_code == 200, changed.text
    assert api_status(client, changed.json()["accessToken"]) == 200
    signed_out(client, access, refresh)
    signed_out(client, other, other_refresh)
    client.cookies.clear()
    old = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert old.status_code == 401
    assert api_status(client, log_in(client, user.email, "a new password")[0]) == 200


def test_my_account_page_changes_the_password_and_signs_out_everywhere(client, runtime):
    user = make_user(runtime, make_org(runtime), "USER")
    access, refresh = log_in(client, user.email)
    other, other_refresh = log_in(client, user.email)
    cookies = f"herald_access={access}; herald_refresh={refresh}; herald_csrf={CSRF}"
    headers = {"Cookie": cookies, "Accept": "text/html"}
    client.cookies.clear()
    shown = client.get("/settings/account", headers=headers)
    assert shown.status_code == 200
    assert 'action="/settings/account/password"' in shown.text
    assert 'action="/settings/account/sessions/revoke"' in shown.text
    assert 'href="/settings/account"' in shown.text  # from the layout
    changed = client.post(
        "/settings/account/password",
        data={"csrf_token": CSRF, "current": PASSWORD, "new": "page password"},
        headers=headers,
    )
    assert changed.status_code == 303
    fresh = set_cookies(changed)
    signed_out(client, other, other_refresh)
    assert page(client, herald_access=fresh["herald_access"]).status_code == 200

    out = page_form(client, "/settings/account/sessions/revoke", fresh)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    signed_out(client, fresh["herald_access"], fresh["herald_refresh"])


def test_anonymous_callers_get_401_or_the_login_page(client):
    for path in ("/api/auth/sessions/revoke", "/api/auth/password"):
        client.cookies.clear()
        response = client.post(path, json={"current": PASSWORD, "new": "x" * 12})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated", path
    for path in ("/settings/account/password", "/settings/account/sessions/revoke"):
        client.cookies.clear()
        response = client.post(
            path,
            data={"csrf_token": CSRF},
            headers={"Cookie": f"herald_csrf={CSRF}", "Accept": "text/html"},
        )
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
