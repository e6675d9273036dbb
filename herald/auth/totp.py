"""TOTP (RFC 6238) with a +-1 step window; which step was used is returned so it can be burnt."""

from __future__ import annotations

import time

import pyotp

STEP_SECONDS = 30
ISSUER = "Herald"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_url(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (now-1, now or now+1) whose code equals ``code``, or None."""
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
