"""Forged, expired and replayed tokens: the API answers 401, the pages send the browser to
the login page; refresh tokens are single-use, races included, and logout ends a session.

tests/auth/test_tokens.py checks the API side of several forgeries on /api/auth/me; here
every forgery is also presented to a page as the herald_access cookie, and the asymmetric
(RS/HS) confusion is added. tests/auth/test_refresh.py already shows that replaying a used
refresh token answers 401 and revokes its family (the newest token too,
``test_replaying_a_used_refresh_token_revokes_the_whole_family``) and that the API's logout
revokes (``test_logout_revokes_the_refresh_token_and_clears_the_cookie``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.auth.tokens import REQUIRED_CLAIMS, _signing_key
from herald.runtime import Runtime
from tests.orgs.factories import PASSWORD, SeededUser, claims_for, make_org, make_user
from tests.security.conftest import cookie_values, page_logout, page_session

API_ROUTE = "/api/crm/contacts"
PAGE_ROUTE = "/crm/contacts"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64(json.dumps(value).encode())


def hs256_by_hand(claims: dict, secret: bytes, alg: str = "HS256") -> str:
    """An HMAC-signed JWT built without PyJWT, which refuses a PEM key as an HMAC secret."""
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tampered_payload(user: SeededUser, runtime: Runtime, good: str) -> str:
    header, _payload, signature = good.split(".")
    return f"{header}.{segment(claims_for(user, runtime, role='ADMIN'))}.{signature}"


def _tampered_signature(good: str) -> str:
    header, payload, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


RSA_KEY = _rsa_key()

# name -> how to forge a token for the user, given the genuine one
FORGERIES: dict[str, Callable[[SeededUser, Runtime, str], str]] = {
    "alg none": lambda u, rt, _: (
        f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims_for(u, rt))}."
    ),
    "alg None, signature kept": lambda u, rt, good: (
        f"{segment({'alg': 'None'})}.{segment(claims_for(u, rt))}.{good.split('.')[2]}"
    ),
    "HS256 with another key": lambda u, rt, _: jwt.encode(claims_for(u, rt), b"k" * 32, "HS256"),
    "HS256 with the public key as the HMAC secret": lambda u, rt, _: hs256_by_hand(
        claims_for(u, rt), _public_pem(RSA_KEY)
    ),
    "RS256 with a key of our own": lambda u, rt, _: jwt.encode(claims_for(u, rt), RSA_KEY, "RS256"),
    "HS512 with the right key": lambda u, rt, _: jwt.encode(
        claims_for(u, rt), _signing_key(rt.settings), "HS512"
    ),
    "HS384 with the right key": lambda u, rt, _: jwt.encode(
        claims_for(u, rt), _signing_key(rt.settings), "HS384"
    ),
    "expired": lambda u, rt, _: jwt.encode(
        claims_for(u, rt, iat=int(time.time()) - 3600, exp=int(time.time()) - 2700),
        _signing_key(rt.settings),
        "HS256",
    ),
    "wrong audience": lambda u, rt, _: jwt.encode(
        claims_for(u, rt, aud="another-app"), _signing_key(rt.settings), "HS256"
    ),
    "wrong issuer": lambda u, rt, _: jwt.encode(
        claims_for(u, rt, iss="someone-else"), _signing_key(rt.settings), "HS256"
    ),
    "payload tampered (role USER -> ADMIN)": lambda u, rt, good: _tampered_payload(u, rt, good),
    "signature tampered": lambda _u, _rt, good: _tampered_signature(good),
    "signature stripped": lambda _u, _rt, good: good.rsplit(".", 1)[0] + ".",
    **{
        f"missing {claim}": (
            lambda u, rt, _, claim=claim: jwt.encode(  # type: ignore[misc]
                claims_for(u, rt, **{claim: None}), _signing_key(rt.settings), "HS256"
            )
        )
        for claim in REQUIRED_CLAIMS
    },
}


@pytest.fixture(scope="module")
def user(runtime):
    return make_user(runtime, make_org(runtime), "USER")


@pytest.fixture(scope="module")
def genuine(live_server, user) -> str:
    response = httpx.post(
        f"{live_server.url}/api/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    return str(response.json()["accessToken"])


def test_the_genuine_token_works_on_both_sides(client, genuine):
    """The control: what the forgeries below are refused, the real token is granted."""
    assert client.get(API_ROUTE, headers={"Authorization": f"Bearer {genuine}"}).status_code == 200
    page = client.get(PAGE_ROUTE, headers={"Cookie": f"herald_access={genuine}"})
    assert page.status_code == 200


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_token_is_refused_by_the_api_and_the_pages(
    client, runtime, user, genuine, forgery
):
    token = FORGERIES[forgery](user, runtime, genuine)
    assert token != genuine
    api = client.get(API_ROUTE, headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401, api.text
    assert api.json()["error"]["code"] in ("invalid_token", "token_expired")
    page = client.get(
        PAGE_ROUTE, headers={"Cookie": f"herald_access={token}", "Accept": "text/html"}
    )
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_the_role_comes_from_the_database_not_from_the_token(client, runtime, db):
    """A correctly signed token that names a higher role than the user has grants nothing
    more; a demoted ADMIN's unexpired token loses the ADMIN rights at once."""
    from herald.orgs.models import User

    user = make_user(runtime, make_org(runtime), "USER")
    inflated = jwt.encode(
        claims_for(user, runtime, role="ADMIN"), _signing_key(runtime.settings), "HS256"
    )
    response = client.get("/api/settings/users", headers={"Authorization": f"Bearer {inflated}"})
    assert response.status_code == 403

    admin = make_user(runtime, make_org(runtime), "ADMIN")
    token = client.post(
        "/api/auth/login", json={"email": admin.email, "password": PASSWORD}
    ).json()["accessToken"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/settings/users", headers=bearer).status_code == 200
    db.get(User, admin.id).role = "USER"
    db.commit()
    assert client.get("/api/settings/users", headers=bearer).status_code == 403


def _log_in(client: httpx.Client, user: SeededUser) -> str:
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    return str(response.cookies["refreshToken"])


def _refresh(base_url: str, token: str) -> httpx.Response:
    # the cookie is Secure (https base URL): sent by hand over the plain-http test server
    return httpx.post(
        f"{base_url}/api/auth/refresh", headers={"Cookie": f"refreshToken={token}"}, timeout=30
    )


def test_racing_refreshes_one_wins_and_the_losers_revoke_the_family(client, live_server, runtime):
    """Four clients present one refresh token at once. The design treats every presentation
    after the first as a replay: exactly one gets new tokens, the others 401 — and the first
    loser revokes the whole family, so the winner's new refresh token is dead too (the
    session ends; the person logs in again). tests/auth/test_refresh.py only asserts that
    at most one wins."""
    user = make_user(runtime, make_org(runtime))
    token = _log_in(client, user)
    barrier = threading.Barrier(4)
    results: list[httpx.Response] = []

    def go() -> None:
        barrier.wait()
        results.append(_refresh(live_server.url, token))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 401, 401, 401], statuses
    codes = {r.json()["error"]["code"] for r in results if r.status_code == 401}
    # the first loser finds the token spent (reuse); later ones may find it already revoked
    assert "refresh_reused" in codes and codes <= {"refresh_reused", "refresh_invalid"}
    winner = next(r for r in results if r.status_code == 200)
    rotated = winner.cookies["refreshToken"]
    assert _refresh(live_server.url, rotated).status_code == 401
    # the winner's access token itself stays valid until it expires (15 minutes)
    access = winner.json()["accessToken"]
    assert (
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    )


def test_a_page_refresh_cookie_replayed_elsewhere_signs_the_session_out(start_server, runtime):
    """The pages' refresh cookie follows the same rules. Within one app process a used token
    is answered with the result of its first use for SilentRefresh.REUSE_SECONDS (two tabs
    refreshing at once, tests/web/test_session.py); presented to another process it is a
    replay: the family is revoked and both holders are sent to the login page."""
    first, second = start_server(), start_server()
    user = make_user(runtime, make_org(runtime), "USER")
    with httpx.Client(base_url=first.url) as c:
        cookies = page_session(c, user)
    stale = "herald_access=expired.token.value"
    rotated = httpx.get(
        f"{first.url}{PAGE_ROUTE}",
        headers={"Cookie": f"{stale}; herald_refresh={cookies['herald_refresh']}"},
    )
    assert rotated.status_code == 200
    new_refresh = cookie_values(rotated)["herald_refresh"]
    assert new_refresh != cookies["herald_refresh"]

    replay = httpx.get(
        f"{second.url}{PAGE_ROUTE}",
        headers={"Cookie": f"{stale}; herald_refresh={cookies['herald_refresh']}"},
    )
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
    assert cookie_values(replay) == {"herald_access": "", "herald_refresh": ""}
    legit = httpx.get(
        f"{second.url}{PAGE_ROUTE}", headers={"Cookie": f"{stale}; herald_refresh={new_refresh}"}
    )
    assert legit.status_code == 303 and legit.headers["location"].startswith("/login")


def test_page_logout_revokes_the_session_refresh_token(start_server, runtime):
    server = start_server()
    user = make_user(runtime, make_org(runtime), "USER")
    with httpx.Client(base_url=server.url) as c:
        cookies = page_session(c, user)
        form = c.get(
            "/crm/contacts", headers={"Cookie": f"herald_access={cookies['herald_access']}"}
        )
        csrf = cookie_values(form)["herald_csrf"]
        out = page_logout(c, csrf, cookies)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert cookie_values(out) == {"herald_access": "", "herald_refresh": ""}
    # the refresh token no longer opens a session, on this process or another
    other = start_server()
    for base in (server.url, other.url):
        again = httpx.get(
            f"{base}{PAGE_ROUTE}",
            headers={"Cookie": f"herald_access=stale; herald_refresh={cookies['herald_refresh']}"},
        )
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
