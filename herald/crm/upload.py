"""The uploaded CSV's own size check (the request body as a whole is bounded by
herald.bodylimit before it is read)."""

from __future__ import annotations

from herald.errors import PayloadTooLarge


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than the limit of {limit} bytes.",
        details={"maxBytes": limit},
    )
