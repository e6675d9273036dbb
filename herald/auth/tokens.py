"""Access tokens (JWT, HS256 only) and opaque refresh tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from herald.db import utcnow
from herald.errors import NotAuthenticated
from herald.secretbox import derive_key
from herald.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "org", "role", "aud", "iss"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    org_id: uuid.UUID
    role: str
    epoch: int = 0  # the user's session epoch when the token was issued


def _signing_key(settings: Settings) -> bytes:
    return derive_key(settings.secret_key, "herald.jwt")


def issue_access_token(
    settings: Settings,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    role: str,
    now: dt.datetime | None = None,
    epoch: int = 0,
) -> str:
    issued = now or utcnow()
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "org": str(org_id),
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int(issued.timestamp()) + settings.access_token_seconds,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "sev": epoch,
    }
    return jwt.encode(claims, _signing_key(settings), algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            _signing_key(settings),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        epoch = claims.get("sev", 0)
        if not isinstance(epoch, int):
            raise TypeError("sev")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            org_id=uuid.UUID(claims["org"]),
            role=claims["role"],
            epoch=epoch,
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("The access token has expired.", code="token_expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise NotAuthenticated("The access token is invalid.", code="invalid_token") from None


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque token and the hash we store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
