"""MFA enrolment: setup gives a secret, enable proves it with a code, login then needs it."""

from __future__ import annotations

import pyotp

from tests.orgs.factories import PASSWORD, login, make_org, make_user


def test_enrolment_then_login_requires_the_code(client, runtime):
    user = make_user(runtime, make_org(runtime))
    headers = login(client, user)
    setup = client.post("/api/auth/mfa/setup", headers=headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauthUrl"].startswith("otpauth://totp/")
    assert secret in setup.json()["otpauthUrl"]

    totp = pyotp.TOTP(secret)
    enable = client.post("/api/auth/mfa/enable", headers=headers, json={"code": totp.now()})
    assert enable.status_code == 200

    no_code = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert no_code.json()["error"]["code"] == "mfa_required"
    # the code used for enabling cannot be replayed to log in
    replay = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": PASSWORD, "mfaCode": totp.now()},
    )
    assert replay.status_code == 401


def test_enable_with_a_wrong_code_is_422_and_mfa_stays_off(client, runtime):
    user = make_user(runtime, make_org(runtime))
    headers = login(client, user)
    client.post("/api/auth/mfa/setup", headers=headers)
    response = client.post("/api/auth/mfa/enable", headers=headers, json={"code": "000000"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "code"
    assert (
        client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}).status_code
        == 200
    )


def test_enable_before_setup_is_a_conflict(client, runtime):
    headers = login(client, make_user(runtime, make_org(runtime)))
    response = client.post("/api/auth/mfa/enable", headers=headers, json={"code": "123456"})
    assert response.status_code == 409


def test_mfa_setup_needs_login(client):
    assert client.post("/api/auth/mfa/setup").status_code == 401


def test_totp_secret_is_encrypted_at_rest(client, runtime, db):
    from herald.orgs.models import User

    user = make_user(runtime, make_org(runtime))
    headers = login(client, user)
    secret = client.post("/api/auth/mfa/setup", headers=headers).json()["secret"]
    stored = db.get(User, user.id).mfa_secret
    assert stored and secret not in stored
