"""Orgs and users for tests, committed, with their plain passwords and TOTP secrets."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import httpx
import pyotp

from herald.audit.service import CLI, system_actor
from herald.auth.service import mfa_box
from herald.db import unit_of_work
from herald.orgs import service
from herald.orgs.models import Org, User
from herald.runtime import Runtime

PASSWORD = "correct horse battery staple"


@dataclass
class SeededUser:
    id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: str
    password: str = PASSWORD
    totp_secret: str | None = None

    def totp_now(self) -> str:
        assert self.totp_secret
        return pyotp.TOTP(self.totp_secret).now()


def make_org(runtime: Runtime, features: tuple[str, ...] = ("marketing",), name: str = "") -> Org:
    with unit_of_work(runtime.sessions) as session:
        return service.create_org(session, name or f"Org {uuid.uuid4().hex[:8]}", list(features))


def make_user(
    runtime: Runtime, org: Org | uuid.UUID, role: str = "ADMIN", mfa: bool = False
) -> SeededUser:
    org_id = org.id if isinstance(org, Org) else org
    email = f"{role.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    secret = pyotp.random_base32() if mfa else None
    with unit_of_work(runtime.sessions) as session:
        org_row = service.get_org(session, org_id)
        user: User = service.create_user(
            session, org_row, email, PASSWORD, role, actor=system_actor(org_id, CLI)
        )
        if secret:
            user.mfa_secret = mfa_box(runtime.settings).seal(secret)
            user.mfa_enabled = True
        return SeededUser(user.id, org_id, email, role, PASSWORD, secret)


def login(client: httpx.Client, user: SeededUser) -> dict[str, str]:
    """Log in over the API and return the Authorization header."""
    body: dict[str, str] = {"email": user.email, "password": user.password}
    if user.totp_secret:
        body["mfaCode"] = user.totp_now()
    response = client.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def admin_headers(client: httpx.Client, runtime: Runtime, role: str = "ADMIN") -> dict[str, str]:
    """A fresh licensed org with one user of ``role``, logged in."""
    org = make_org(runtime)
    return login(client, make_user(runtime, org, role))


def claims_for(user: SeededUser, runtime: Runtime, **overrides: object) -> dict[str, object]:
    """The claims of a valid access token for ``user``; an override of None drops a claim."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user.id),
        "org": str(user.org_id),
        "role": user.role,
        "iat": now,
        "exp": now + 600,
        "aud": runtime.settings.jwt_audience,
        "iss": runtime.settings.jwt_issuer,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}
