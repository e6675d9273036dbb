"""Access tokens: one fixed algorithm, every claim checked, nothing forged gets in."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from herald.auth.tokens import _signing_key
from tests.orgs.factories import claims_for, login, make_org, make_user


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def me(client, token: str):
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def user(runtime):
    return make_user(runtime, make_org(runtime), "USER")


def test_a_correctly_signed_token_is_accepted(client, runtime, user):
    token = jwt.encode(claims_for(user, runtime), _signing_key(runtime.settings), "HS256")
    assert me(client, token).status_code == 200


def test_alg_none_is_refused(client, runtime, user):
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(user, runtime))}."
    response = me(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_another_algorithm_with_the_same_key_is_refused(client, runtime, user):
    token = jwt.encode(claims_for(user, runtime), _signing_key(runtime.settings), "HS512")
    assert me(client, token).status_code == 401


def test_tampered_claims_are_refused(client, runtime, user):
    good = login(client, user)["Authorization"].split()[1]
    header, _payload, signature = good.split(".")
    forged = claims_for(user, runtime, role="ADMIN")
    response = me(client, f"{header}.{b64(forged)}.{signature}")
    assert response.status_code == 401


def test_a_token_signed_with_another_key_is_refused(client, runtime, user):
    token = jwt.encode(claims_for(user, runtime), b"x" * 32, "HS256")
    assert me(client, token).status_code == 401


def test_expired_token_is_refused_with_its_own_code(client, runtime, user):
    past = int(time.time()) - 3600
    token = jwt.encode(
        claims_for(user, runtime, iat=past, exp=past + 900), _signing_key(runtime.settings), "HS256"
    )
    response = me(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "org", "role", "aud", "iss"])
def test_a_token_missing_a_required_claim_is_refused(client, runtime, user, claim):
    claims = claims_for(user, runtime)
    del claims[claim]
    token = jwt.encode(claims, _signing_key(runtime.settings), "HS256")
    assert me(client, token).status_code == 401


def test_wrong_audience_or_issuer_is_refused(client, runtime, user):
    key = _signing_key(runtime.settings)
    for override in ({"aud": "someone-else"}, {"iss": "someone-else"}):
        token = jwt.encode(claims_for(user, runtime, **override), key, "HS256")
        assert me(client, token).status_code == 401


def test_a_token_naming_another_org_is_refused(client, runtime, user):
    other = make_org(runtime)
    token = jwt.encode(
        claims_for(user, runtime, org=str(other.id)), _signing_key(runtime.settings), "HS256"
    )
    assert me(client, token).status_code == 401


def test_garbage_tokens_are_401_not_500(client):
    for token in ("abc", "a.b.c", "ey.ey.ey", "Ω" * 10, "a" * 5000):
        header = f"Bearer {token}".encode()  # raw bytes: a non-ASCII header reaches the server
        response = client.get("/api/auth/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["error"]["code"] in ("not_authenticated", "invalid_token")


def test_no_token_is_401(client):
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
