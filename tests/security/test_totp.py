"""TOTP as a second factor: a code works once, guessing is throttled, the window is ±1 step.

Already shown in tests/auth/test_login.py: an accepted code replayed on the API is refused
(``test_mfa_code_is_accepted_once``), the previous step is accepted and a code three steps
old is not (``test_mfa_accepts_the_previous_time_step_but_not_older``).
"""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from herald.auth.totp import STEP_SECONDS
from tests.orgs.factories import PASSWORD, SeededUser, make_org, make_user
from tests.security.conftest import page_login


def settle_in_step(margin: float = 3.0) -> int:
    """Wait until the clock is at least ``margin`` seconds from a step boundary, so that the
    server judges a code in the step it was made for; the current step."""
    while True:
        now = time.time()
        into = now % STEP_SECONDS
        if margin <= into <= STEP_SECONDS - margin:
            return int(now // STEP_SECONDS)
        time.sleep(0.2)


def code_at(user: SeededUser, step: int) -> str:
    return pyotp.TOTP(user.totp_secret).generate_otp(step)


def api_login(client: httpx.Client, user: SeededUser, code: str) -> httpx.Response:
    return client.post(
        "/api/auth/login", json={"email": user.email, "password": PASSWORD, "mfaCode": code}
    )


@pytest.fixture
def mfa_user(runtime) -> SeededUser:
    return make_user(runtime, make_org(runtime), mfa=True)


def test_a_code_used_on_the_login_page_cannot_be_replayed_anywhere(client, mfa_user):
    step = settle_in_step()
    code = code_at(mfa_user, step)
    first = page_login(client, mfa_user, code)
    assert first.status_code == 303
    again = page_login(client, mfa_user, code)
    assert again.status_code == 401
    assert "herald_access" not in again.headers.get("set-cookie", "")
    assert api_login(client, mfa_user, code).status_code == 401


def test_an_older_step_is_refused_once_a_newer_one_was_used(client, mfa_user):
    """Steps are burnt in order: after the current step's code, the previous step's (still
    inside the ±1 window) is refused too, so an observed older code is worth nothing."""
    step = settle_in_step()
    assert api_login(client, mfa_user, code_at(mfa_user, step)).status_code == 200
    older = api_login(client, mfa_user, code_at(mfa_user, step - 1))
    assert older.status_code == 401
    assert older.json()["error"]["code"] == "mfa_invalid"


def test_the_sixth_failure_is_429_even_with_the_right_code_after(client, mfa_user):
    step = settle_in_step(margin=5)
    right = code_at(mfa_user, step)
    wrong = [f"{(int(right) + i) % 1_000_000:06d}" for i in range(1, 6)]
    for guess in wrong:
        response = api_login(client, mfa_user, guess)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "mfa_invalid"
    blocked = api_login(client, mfa_user, right)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0
    # the login page is throttled by the same count
    assert page_login(client, mfa_user, right).status_code == 429


@pytest.mark.parametrize("offset", [-2, 2, 3, -10])
def test_codes_outside_one_step_either_side_are_refused(client, mfa_user, offset):
    step = settle_in_step()
    response = api_login(client, mfa_user, code_at(mfa_user, step + offset))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "mfa_invalid"


def test_the_next_step_is_accepted_for_a_clock_slightly_ahead(client, mfa_user):
    step = settle_in_step()
    assert api_login(client, mfa_user, code_at(mfa_user, step + 1)).status_code == 200


@pytest.mark.parametrize(
    "junk", ["", "12345", "1234567", "abcdef", "12 34 5x", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_malformed_codes_are_refused_without_an_error(client, mfa_user, junk):
    response = api_login(client, mfa_user, junk)
    assert response.status_code in (401, 422)
    assert response.json()["error"]["code"] in ("mfa_required", "mfa_invalid", "validation_error")
