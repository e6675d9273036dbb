"""Browser tests: Debian's Chromium driven by Playwright against the real app.

The app here serves plain http on loopback with its base URL set to itself (so cookies are
not Secure and links in messages point back at it), and runs a sending worker.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.runtime import Runtime
from tests.conftest import LiveServer, free_port, make_settings
from tests.installed import require
from tests.orgs.factories import SeededUser

CHROMIUM = Path(os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


# Per module: Playwright's sync API keeps an event loop running on the main thread while a
# browser is open, and other suites call asyncio.run() there.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(CHROMIUM, "browser tests need it (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def web(runtime: Runtime) -> Iterator[LiveServer]:
    """The app as a person's browser reaches it, with a sending worker inside (stopped after
    the module, so that its worker never takes sends other suites arrange)."""
    port = free_port()
    settings = make_settings(
        runtime.settings.database_url,
        base_url=f"http://127.0.0.1:{port}",
        lease_seconds=5,
        retry_base_seconds=0.5,
        retry_window_seconds=5,
        open_flush_seconds=0.3,
        smtp_verify_tls=False,  # the test SMTP servers' certificates are self-signed
    )
    web_runtime = Runtime(settings=settings, engine=runtime.engine, sessions=runtime.sessions)
    server = LiveServer(web_runtime, port=port, embedded_worker=True).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Sends left by a test never reach the next test's worker."""


@pytest.fixture
def page(browser, web: LiveServer) -> Iterator[object]:
    context = browser.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, user: SeededUser) -> None:  # type: ignore[no-untyped-def]
    """Through the login form, as a person would (with an MFA code when enrolled)."""
    page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    if user.totp_secret:
        page.get_by_label(re.compile("MFA code")).fill(user.totp_now())
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
