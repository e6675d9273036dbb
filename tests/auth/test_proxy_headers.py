"""`herald serve` behind a reverse proxy: login throttling per client address uses the
forwarded address only from the proxies named in HERALD_FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import os
import secrets
import subprocess

import httpx

from tests.conftest import TEST_SECRET
from tests.marketing.engine import serve_process, stop_process


def serve(database_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    environment = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": TEST_SECRET,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_LOGIN_ADDRESS_MAX_FAILURES": "2",
        **env,
    }
    return serve_process(environment, "--no-worker")


def failed_login(url: str, client_address: str, n: int) -> int:
    answer = httpx.post(
        f"{url}/api/auth/login",
        json={"email": f"nobody-{n}-{client_address}@example.com", "password": "wrong password"},
        headers={"X-Forwarded-For": client_address},
        timeout=30,  # an unknown email costs a production-cost hash check
    )
    return answer.status_code


def test_trusted_proxy_throttles_each_client_apart(database_url, runtime):
    process, url = serve(database_url, HERALD_FORWARDED_ALLOW_IPS="127.0.0.1")
    one, other = (f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{n}" for n in (1, 2))
    try:
        assert [failed_login(url, one, n) for n in range(3)] == [401, 401, 429]
        assert failed_login(url, other, 0) == 401  # another client is not blocked
    finally:
        stop_process(process)


def test_without_trusted_proxies_the_header_is_ignored(database_url, runtime):
    process, url = serve(database_url)
    try:
        # Each request claims another address; all come from 127.0.0.1, which is throttled.
        codes = [failed_login(url, f"192.0.2.{n}", n) for n in range(10, 13)]
        assert codes[-1] == 429
    finally:
        stop_process(process)
