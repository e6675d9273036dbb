"""Request bodies have a size limit, everywhere: a body over it is refused with 413 while it
arrives (by its Content-Length, or by counting a streamed body), before it is parsed or
spooled to disk in full. CSV imports get the configured upload limit; other requests 8 MiB
(two 1 MiB campaign bodies, JSON-escaped, and the rest). An API request with a body but no
bearer token, outside the few anonymous auth endpoints, gets its 401 before the body is read
(FastAPI would parse a JSON body before the route's login check)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.bearer import NO_TOKEN, bearer_token
from herald.error_handlers import error_response
from herald.settings import Settings
from herald.text import is_number

DEFAULT_LIMIT = 8 * 1024 * 1024
UPLOAD_PATHS = ("/api/crm/contacts/import", "/crm/import")
# API endpoints that take a body from callers without an access token.
ANONYMOUS_API_BODIES = ("/api/auth/login", "/api/auth/refresh", "/api/auth/logout")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NONE = (b"", b"0")  # a Content-Length that announces no body
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
        headers = dict(scope.get("headers", []))
        if b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") in _NONE:
            # no body (RFC 9112 6.3): nothing to count or refuse; most requests are GETs
            await self.app(scope, receive, send)
            return
        announced, allowed = self.limit_for(scope["path"])
        if _anonymous_api_body(scope, headers):
            await _not_authenticated(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if is_number(declared) and int(declared) > allowed:
            await self._refuse(announced, scope, receive, send)
            return
        if is_number(declared) and b"transfer-encoding" not in headers:
            # the server reads exactly the declared length (RFC 9112 6.3): nothing to count
            await self.app(scope, receive, send)
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


def _anonymous_api_body(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """An API request that carries a body but no bearer token, to an endpoint that needs one."""
    path = scope["path"].rstrip("/")
    if scope["method"] in _READ_METHODS or not path.startswith("/api/"):
        return False
    if path in ANONYMOUS_API_BODIES:
        return False
    has_body = b"transfer-encoding" in headers or headers.get(b"content-length", b"0") not in _NONE
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    return has_body and bearer_token(authorization) is None


async def _not_authenticated(scope: Scope, receive: Receive, send: Send) -> None:
    """current_user's own answer (herald.auth.deps), given before the body arrives."""
    response = error_response(
        401,
        "not_authenticated",
        NO_TOKEN,
        None,
        {"Connection": "close"},
    )
    await response(scope, receive, send)
