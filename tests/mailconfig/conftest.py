"""Fixtures for the email configuration tests: a real SMTP server and a logged-in ADMIN."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from herald.runtime import Runtime
from tests.orgs.factories import SeededUser, login, make_org, make_user
from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server


@dataclass
class Admin:
    user: SeededUser
    headers: dict[str, str]


@pytest.fixture
def admin(client: httpx.Client, runtime: Runtime) -> Admin:
    """The ADMIN of a fresh licensed org, logged in."""
    user = make_user(runtime, make_org(runtime), "ADMIN")
    return Admin(user, login(client, user))
