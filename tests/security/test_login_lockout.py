"""Nobody can lock an account's owner out from elsewhere: failures count per account and
client address (the 6th from one address answers 429), account-wide only up to a much
higher bound, and per client address across accounts. Client addresses come from a trusted
proxy's X-Forwarded-For (tests/auth/test_proxy_headers.py)."""

from __future__ import annotations

import secrets

import httpx

from tests.auth.test_proxy_headers import serve
from tests.marketing.engine import stop_process
from tests.orgs.factories import PASSWORD, make_org, make_user


def attempt(url: str, email: str, password: str, client_address: str) -> int:
    answer = httpx.post(
        f"{url}/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client_address},
        timeout=30,  # an unknown email costs a production-cost hash check
    )
    return answer.status_code


def addresses(count: int) -> list[str]:
    prefix = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    return [f"{prefix}.{n}" for n in range(1, count + 1)]


def test_a_stranger_guessing_does_not_lock_the_owner_out(database_url, runtime):
    owner = make_user(runtime, make_org(runtime))
    process, url = serve(
        database_url,
        HERALD_FORWARDED_ALLOW_IPS="127.0.0.1",
        HERALD_LOGIN_ADDRESS_MAX_FAILURES="1000",
    )
    stranger, home = addresses(2)
    try:
        codes = [attempt(url, owner.email, f"guess {n}", stranger) for n in range(6)]
        assert codes == [401] * 5 + [429]
        # the stranger stays blocked, even with the right password...
        assert attempt(url, owner.email, PASSWORD, stranger) == 429
        # ...while the owner, from home, logs in
        assert attempt(url, owner.email, PASSWORD, home) == 200
    finally:
        stop_process(process)


def test_the_account_wide_bound_still_stops_a_spread_out_attack(database_url, runtime):
    owner = make_user(runtime, make_org(runtime))
    process, url = serve(
        database_url,
        HERALD_FORWARDED_ALLOW_IPS="127.0.0.1",
        HERALD_LOGIN_ADDRESS_MAX_FAILURES="1000",
        HERALD_LOGIN_ACCOUNT_TOTAL_MAX_FAILURES="8",
    )
    *attackers, late = addresses(3)
    try:
        codes = [attempt(url, owner.email, "guess", a) for a in attackers for _ in range(4)]
        assert codes == [401] * 8
        assert attempt(url, owner.email, PASSWORD, late) == 429
    finally:
        stop_process(process)


def test_successful_logins_are_not_counted_as_failures(start_server, runtime):
    from sqlalchemy import delete

    from herald.auth.models import LoginFailure
    from herald.db import unit_of_work
    from tests.orgs.factories import login

    # earlier tests failed logins from this same loopback address: start from a clean count
    with unit_of_work(runtime.sessions) as session:
        session.execute(delete(LoginFailure).where(LoginFailure.key.like("addr:%")))
    server = start_server(login_address_max_failures=3, login_account_total_max_failures=3)
    owner = make_user(runtime, make_org(runtime))
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            login(client, owner)  # would be 429 from the third on if they were counted
