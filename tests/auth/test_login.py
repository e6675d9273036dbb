"""Login per the contract: shape, cookie, unknown user vs wrong password, MFA, throttling."""

from __future__ import annotations

import time

import httpx
import pyotp

from herald.auth.tokens import decode_access_token
from tests.orgs.factories import PASSWORD, login, make_org, make_user


def test_login_answers_the_contract_shape_and_sets_the_refresh_cookie(client, runtime):
    user = make_user(runtime, make_org(runtime), "MANAGER")
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900
    assert body["user"] == {
        "id": str(user.id),
        "email": user.email,
        "role": "MANAGER",
        "orgId": str(user.org_id),
    }
    claims = decode_access_token(runtime.settings, body["accessToken"])
    assert claims.user_id == user.id and claims.role == "MANAGER"

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("refreshToken=")
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/api/auth" in lowered
    assert "secure" in lowered  # the test base URL is https


def test_refresh_cookie_is_not_secure_when_served_over_plain_http(start_server, runtime):
    server = start_server(base_url="http://127.0.0.1")
    user = make_user(runtime, make_org(runtime))
    response = httpx.post(
        f"{server.url}/api/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert "secure" not in response.headers["set-cookie"].lower()


def test_email_is_matched_case_insensitively(client, runtime):
    user = make_user(runtime, make_org(runtime))
    response = client.post(
        "/api/auth/login", json={"email": "  " + user.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200


def test_unknown_email_answers_exactly_like_a_wrong_password(client, runtime):
    user = make_user(runtime, make_org(runtime))
    wrong = client.post("/api/auth/login", json={"email": user.email, "password": "nope-nope"})
    unknown = client.post(
        "/api/auth/login", json={"email": "ghost-" + user.email, "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


def test_unknown_email_takes_about_as_long_as_a_wrong_password(
    client, runtime, production_password_hashes
):
    user = make_user(runtime, make_org(runtime))

    def timed(email: str) -> float:
        start = time.perf_counter()
        client.post("/api/auth/login", json={"email": email, "password": "wrong-password"})
        return time.perf_counter() - start

    # interleave, fewer than the throttle allows for the real account
    wrong = sorted(timed(user.email) for _ in range(3))[1]
    unknown = sorted(timed(f"ghost{i}-{user.email}") for i in range(3))[1]
    # an unknown email still pays for one argon2 verification: no cheap answer to tell it apart
    assert unknown > wrong * 0.4


def test_the_unknown_email_hash_costs_what_a_real_one_costs():
    from argon2 import PasswordHasher

    from herald.auth import passwords

    assert not PasswordHasher().check_needs_rehash(passwords._DUMMY_HASH)
    assert passwords.verify_password(None, "herald-timing-equaliser") is False


def test_inactive_user_cannot_log_in(client, runtime, db):
    from herald.orgs.models import User

    user = make_user(runtime, make_org(runtime))
    db.get(User, user.id).is_active = False
    db.commit()
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_malformed_login_body_is_a_422_in_the_error_shape(client):
    for payload in ({"email": "x@example.com"}, {"password": "x"}, {"email": 5, "password": []}):
        response = client.post("/api/auth/login", json=payload)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["field"] in ("email", "password")
    response = client.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_mfa_user_needs_a_code(client, runtime):
    user = make_user(runtime, make_org(runtime), mfa=True)
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "mfa_required"


def test_mfa_wrong_code_is_refused(client, runtime):
    user = make_user(runtime, make_org(runtime), mfa=True)
    good = user.totp_now()
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    response = client.post(
        "/api/auth/login", json={"email": user.email, "password": PASSWORD, "mfaCode": bad}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "mfa_invalid"


def test_mfa_code_is_accepted_once(client, runtime):
    user = make_user(runtime, make_org(runtime), mfa=True)
    code = user.totp_now()
    body = {"email": user.email, "password": PASSWORD, "mfaCode": code}
    assert client.post("/api/auth/login", json=body).status_code == 200
    replay = client.post("/api/auth/login", json=body)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "mfa_invalid"


def test_mfa_accepts_the_previous_time_step_but_not_older(client, runtime):
    user = make_user(runtime, make_org(runtime), mfa=True)
    totp = pyotp.TOTP(user.totp_secret)
    # the codes are computed here and checked a moment later: not across a step's end
    into_step = time.time() % totp.interval
    if into_step > totp.interval - 5:
        time.sleep(totp.interval - into_step + 0.1)
    older = totp.at(time.time() - 95)
    body = {"email": user.email, "password": PASSWORD, "mfaCode": older}
    assert client.post("/api/auth/login", json=body).status_code == 401
    previous = totp.at(time.time() - 30)
    body["mfaCode"] = previous
    assert client.post("/api/auth/login", json=body).status_code == 200


def test_sixth_failure_for_one_account_answers_429_even_with_the_right_password(client, runtime):
    user = make_user(runtime, make_org(runtime))
    for _ in range(5):
        response = client.post("/api/auth/login", json={"email": user.email, "password": "bad"})
        assert response.status_code == 401
    blocked = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0
    # another account is not affected
    other = make_user(runtime, make_org(runtime))
    assert login(client, other)


def test_success_forgives_earlier_failures(client, runtime):
    user = make_user(runtime, make_org(runtime))
    for _ in range(4):
        client.post("/api/auth/login", json={"email": user.email, "password": "bad"})
    login(client, user)
    for _ in range(4):
        response = client.post("/api/auth/login", json={"email": user.email, "password": "bad"})
        assert response.status_code == 401


def test_failures_from_one_address_are_throttled_across_accounts(start_server, runtime, db):
    from sqlalchemy import delete

    from herald.auth.models import LoginFailure

    # earlier tests failed logins from this same loopback address: start from a clean count
    db.execute(delete(LoginFailure).where(LoginFailure.key.like("addr:%")))
    db.commit()
    server = start_server(login_address_max_failures=3)
    with httpx.Client(base_url=server.url) as c:
        for i in range(3):
            response = c.post(
                "/api/auth/login", json={"email": f"nobody{i}@example.com", "password": "x"}
            )
            assert response.status_code == 401
        user = make_user(runtime, make_org(runtime))
        response = c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 429


def test_throttling_is_shared_by_two_app_processes(start_server, runtime):
    """The counts live in the database, so a second app sees the first one's failures."""
    first, second = start_server(), start_server()
    user = make_user(runtime, make_org(runtime))
    for _ in range(5):
        httpx.post(f"{first.url}/api/auth/login", json={"email": user.email, "password": "bad"})
    response = httpx.post(
        f"{second.url}/api/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 429


def test_parallel_guesses_cannot_slip_past_the_throttle(live_server, runtime):
    from concurrent.futures import ThreadPoolExecutor

    user = make_user(runtime, make_org(runtime))

    def guess(i: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60) as c:
            body = {"email": user.email, "password": f"wrong-{i}"}
            return c.post("/api/auth/login", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(guess, range(12)))
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 7, codes
