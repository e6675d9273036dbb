"""Request bodies have a size limit, everywhere: a body over it is refused with 413 while it
arrives (by its Content-Length, or by counting a streamed body), before it is parsed or
spooled to disk in full. CSV imports get the configured upload limit; other requests 8 MiB
(two 1 MiB campaign bodies, JSON-escaped, and the rest)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.error_handlers import error_response
from herald.settings import Settings
from herald.text import is_number

DEFAULT_LIMIT = 8 * 1024 * 1024
UPLOAD_PATHS = ("/api/crm/contacts/import", "/crm/import")
# Room for the multipart boundaries and part headers around an uploaded file.
MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(HTTPException):
    """Raised from the body stream. An HTTPException, because FastAPI passes those through
    its body parsing unchanged (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.upload_limit = settings.max_upload_bytes

    def limit_for(self, path: str) -> tuple[int, int]:
        """(the limit to announce, the bytes allowed on the wire) for a path."""
        if path.rstrip("/") in UPLOAD_PATHS:
            return self.upload_limit, self.upload_limit + MULTIPART_OVERHEAD
        return DEFAULT_LIMIT, DEFAULT_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced, allowed = self.limit_for(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length", b"").decode("latin-1")
        if is_number(declared) and int(declared) > allowed:
            await self._refuse(announced, scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > allowed:
                raise _TooLarge(announced)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(announced, scope, receive, send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than the limit of {limit} bytes.",
            {"maxBytes": limit},
            {"Connection": "close"},
        )
        await response(scope, receive, send)
