"""Bounded uploads: a request body over the configured limit is refused with 413 while it
arrives, before it is spooled to disk in full."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message

from herald.errors import PayloadTooLarge
from herald.runtime import get_runtime
from herald.text import is_number

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than the limit of {limit} bytes.",
        details={"maxBytes": limit},
    )


class _BodyTooLarge(HTTPException):
    """Raised from inside the body stream: FastAPI lets HTTPException through unchanged."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class UploadLimitRoute(APIRoute):
    """A route whose request body may not exceed ``max_upload_bytes`` plus multipart framing.

    The uploaded file's own size is checked by the endpoint once the form is parsed.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited_handler(request: Request) -> Response:
            limit = get_runtime(request).settings.max_upload_bytes
            allowed = limit + MULTIPART_OVERHEAD
            declared = request.headers.get("content-length", "")
            if is_number(declared) and int(declared) > allowed:
                raise too_large(limit)
            received = 0
            receive = request.receive

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > allowed:
                    raise _BodyTooLarge()
                return message

            try:
                return await handler(Request(request.scope, limited_receive))
            except _BodyTooLarge:
                raise too_large(limit) from None

        return limited_handler
