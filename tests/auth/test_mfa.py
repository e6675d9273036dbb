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


def test_after_a_secret_key_change_mfa_login_is_a_clear_401_and_an_operator_resets_it(
    client, runtime, database_url
):
    """The seed sealed under the old key cannot be read: never a 500, the attempt counts,
    and `herald user reset-mfa` lets the user in with the password to enrol again."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from herald.auth.service import mfa_box
    from herald.db import unit_of_work
    from herald.orgs.models import User
    from tests.conftest import make_settings

    user = make_user(runtime, make_org(runtime), mfa=True)
    old_key = make_settings(database_url, secret_key="the key before the rotation " * 2)
    with unit_of_work(runtime.sessions) as session:
        session.get(User, user.id).mfa_secret = mfa_box(old_key).seal(user.totp_secret)

    body = {"email": user.email, "password": PASSWORD, "mfaCode": user.totp_now()}
    answer = client.post("/api/auth/login", json=body)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "mfa_unreadable"
    assert "herald user reset-mfa" in answer.json()["error"]["message"]

    herald = str(Path(sys.executable).with_name("herald"))
    env = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [herald, "user", "reset-mfa", "--email", user.email.upper(), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert answer.status_code == 200
