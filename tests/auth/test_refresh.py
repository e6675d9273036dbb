"""Refresh rotation, reuse detection (the whole family revoked), logout."""

from __future__ import annotations

import threading

import httpx

from tests.orgs.factories import PASSWORD, make_org, make_user


def log_in(client, user) -> tuple[str, str]:
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()["accessToken"], response.cookies["refreshToken"]


def refresh(client, token: str) -> httpx.Response:
    # the cookie is Secure (https base URL), so send it by hand over the plain-http test server
    return client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={token}"})


def test_refresh_returns_a_new_access_token_and_rotates_the_cookie(client, runtime):
    user = make_user(runtime, make_org(runtime))
    _, first = log_in(client, user)
    response = refresh(client, first)
    assert response.status_code == 200
    body = response.json()
    assert body["tokenType"] == "Bearer" and body["user"]["email"] == user.email
    second = response.cookies["refreshToken"]
    assert second != first
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.status_code == 200


def test_replaying_a_used_refresh_token_revokes_the_whole_family(client, runtime):
    user = make_user(runtime, make_org(runtime))
    _, first = log_in(client, user)
    second = refresh(client, first).cookies["refreshToken"]
    replay = refresh(client, first)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "refresh_reused"
    # the legitimate holder of the newest token is signed out too
    assert refresh(client, second).status_code == 401


def test_other_sessions_survive_a_family_revocation(client, runtime):
    user = make_user(runtime, make_org(runtime))
    _, laptop = log_in(client, user)
    _, phone = log_in(client, user)
    refresh(client, laptop)
    refresh(client, laptop)  # reuse: laptop family revoked
    assert refresh(client, phone).status_code == 200


def test_two_refreshes_racing_with_one_token_never_both_win(client, live_server, runtime):
    user = make_user(runtime, make_org(runtime))
    _, token = log_in(client, user)
    results: list[int] = []

    def go() -> None:
        with httpx.Client(base_url=live_server.url) as c:
            results.append(refresh(c, token).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) <= 1
    assert all(code in (200, 401) for code in results)


def test_unknown_or_missing_refresh_token_is_401(client):
    assert refresh(client, "not-a-real-token").status_code == 401
    response = client.post("/api/auth/refresh")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "refresh_missing"


def test_logout_revokes_the_refresh_token_and_clears_the_cookie(client, runtime):
    user = make_user(runtime, make_org(runtime))
    _, token = log_in(client, user)
    response = client.post("/api/auth/logout", headers={"Cookie": f"refreshToken={token}"})
    assert response.status_code == 204
    assert (
        'refreshToken=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert refresh(client, token).status_code == 401
