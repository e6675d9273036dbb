"""HeraldError and its kinds; services raise these and one handler renders the contract's shape."""

from __future__ import annotations

from typing import Any


class HeraldError(Exception):
    """An error answered in the contract's shape.

    ``keep_changes``: the unit of work commits what the service did before raising (a
    launch that ends FAILED, a refresh-token family revoked on reuse) instead of rolling back.
    """

    status: int = 400
    code: str = "bad_request"
    keep_changes: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(message)
        if keep_changes is not None:
            self.keep_changes = keep_changes
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(HeraldError):
    """422 with the offending field named in ``details``."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        details = [{"field": field, "message": message}] if field else None
        super().__init__(message, code=code, details=details)


class NotAuthenticated(HeraldError):
    status = 401
    code = "not_authenticated"


class Forbidden(HeraldError):
    status = 403
    code = "forbidden"


class NotFound(HeraldError):
    status = 404
    code = "not_found"


class Conflict(HeraldError):
    status = 409
    code = "conflict"


class PayloadTooLarge(HeraldError):
    status = 413
    code = "payload_too_large"


class RateLimited(HeraldError):
    status = 429
    code = "rate_limited"
