"""The pages' session: login sets HttpOnly cookies, an expired access token is refreshed
silently, and two requests refreshing at once do not sign the person out."""

from __future__ import annotations

import re
import threading

import httpx

from tests.orgs.factories import make_org, make_user


def page_login(client: httpx.Client, user) -> dict[str, str]:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    response = client.post(
        "/login",
        data={"csrf_token": token, "email": user.email, "password": user.password, "next": "/"},
    )
    assert response.status_code == 303, response.text
    cookies = {c.split("=", 1)[0]: c.split("=", 1)[1].split(";")[0]
               for c in response.headers.get_list("set-cookie")}  # fmt: skip
    for header in response.headers.get_list("set-cookie"):
        assert "HttpOnly" in header and "SameSite=Strict" in header
    return cookies


def test_an_expired_access_cookie_is_refreshed_silently_even_by_two_requests_at_once(
    start_server, runtime
):
    live_server = start_server(base_url="http://127.0.0.1")  # cookies without Secure
    user = make_user(runtime, make_org(runtime), "USER")
    with httpx.Client(base_url=live_server.url, headers={"accept": "text/html"}) as client:
        cookies = page_login(client, user)
    stale = f"herald_access=expired.token.value; herald_refresh={cookies['herald_refresh']}"
    results: list[httpx.Response] = []

    def visit() -> None:
        with httpx.Client(base_url=live_server.url) as c:
            results.append(c.get("/crm/contacts", headers={"Cookie": stale}))

    threads = [threading.Thread(target=visit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    fresh = results[0].cookies.get("herald_access")
    assert fresh and all(r.cookies.get("herald_access") == fresh for r in results)
    again = httpx.get(
        f"{live_server.url}/crm/contacts",
        headers={"Cookie": f"herald_access={fresh}"},
        follow_redirects=False,
    )
    assert again.status_code == 200


def test_a_tracked_link_leaves_the_page_session_alone(start_server, runtime):
    """A person signed in to Herald clicks a link in a campaign: the link's answer carries
    no cookie, and the refresh token is not spent on it."""
    live_server = start_server(base_url="http://127.0.0.1")
    user = make_user(runtime, make_org(runtime), "USER")
    with httpx.Client(base_url=live_server.url, headers={"accept": "text/html"}) as client:
        cookies = page_login(client, user)
    stale = f"herald_access=expired.token.value; herald_refresh={cookies['herald_refresh']}"
    link = httpx.get(f"{live_server.url}/c/{'a' * 64}/1", headers={"Cookie": stale})
    assert link.status_code == 404 and "set-cookie" not in link.headers
    page = httpx.get(f"{live_server.url}/crm/contacts", headers={"Cookie": stale})
    assert page.status_code == 200 and page.cookies.get("herald_access")


def test_a_cross_site_form_post_is_refused(start_server, runtime):
    live_server = start_server(base_url="http://127.0.0.1")
    user = make_user(runtime, make_org(runtime), "ADMIN")
    with httpx.Client(base_url=live_server.url, headers={"accept": "text/html"}) as client:
        page_login(client, user)
        form = client.get("/crm/contacts/new")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        forged = client.post(
            "/crm/contacts/new",
            data={"csrf_token": token, "email": "x@example.com"},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        missing = client.post("/crm/contacts/new", data={"email": "x@example.com"})
        assert missing.status_code == 403


def test_the_api_ignores_page_cookies(start_server, runtime):
    live_server = start_server(base_url="http://127.0.0.1")
    user = make_user(runtime, make_org(runtime), "ADMIN")
    with httpx.Client(base_url=live_server.url) as client:
        cookies = page_login(client, user)
        response = client.get(
            "/api/auth/me", headers={"Cookie": f"herald_access={cookies['herald_access']}"}
        )
        assert response.status_code == 401
