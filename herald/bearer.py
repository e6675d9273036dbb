"""The API's credential: the bearer token of the Authorization header, read one way by the
body limit (herald.bodylimit, before the body arrives) and by the API's auth (herald.auth.deps)."""

from __future__ import annotations

NO_TOKEN = "Log in first: send Authorization: Bearer <accessToken>."  # noqa: S105 - a message


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header's value; None without one."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
