"""One place that renders every error in the contract's shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.errors import HeraldError
from herald.log import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        message = str(err.get("msg", "Invalid value."))
        if err.get("type") == "json_invalid":
            message = "The request body is not valid JSON."
        details.append({"field": _field_name(loc), "message": message})
    return details


def wants_page(request: Request) -> bool:
    """Pages get HTML errors; the API, tracking and anything asking for JSON get JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/t/", "/healthz", "/webhooks/")):
        return False
    return "text/html" in request.headers.get("accept", "")


_PAGE_TITLES = {
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "That cannot be done now",
    413: "Too large",
    422: "Please check your input",
    429: "Too many attempts",
}


def error_page(request: Request, status: int, message: str) -> Response:
    from herald.web.pages import render

    title = _PAGE_TITLES.get(status, "Something went wrong")
    return render(request, "errors/error.html", status=status, title=title, message=message)


async def _herald_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HeraldError)
    location = getattr(exc, "location", None)
    if location:
        return RedirectResponse(location, status_code=303)
    if wants_page(request):
        return error_page(request, exc.status, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    first = details[0] if details else {"field": "body", "message": "Invalid input."}
    message = f"{first['field']}: {first['message']}"
    return error_response(422, "validation_error", message, details)


# Reading the body can fail before any field is looked at: a JSON body that is not UTF-8
# (FastAPI answers a bare 400 "There was an error parsing the body"), a form or multipart
# body Starlette cannot parse (a 400 with its parser's message, e.g. no boundary). Both are
# bad input like any other: 422 with the body named, as for a JSON syntax error.
_BODY_PARSE_FAILED = "There was an error parsing the body"


def _unparsable_body(exc: StarletteHTTPException) -> str | None:
    """What is wrong with a body that could not be read, or None for any other error."""
    if exc.status_code != 400:
        return None
    if isinstance(exc.__context__, MultiPartException):
        message = f"The form could not be read: {exc.__context__.message}"
    elif exc.detail != _BODY_PARSE_FAILED:
        return None
    elif isinstance(exc.__cause__, UnicodeDecodeError):
        message = "The request body is not valid JSON: it is not UTF-8 text."
    else:
        message = "The request body could not be read."
    return message


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    unparsable = _unparsable_body(exc)
    if unparsable is not None:
        if wants_page(request):
            return error_page(request, 422, unparsable)
        details = [{"field": "body", "message": unparsable}]
        return error_response(422, "validation_error", f"body: {unparsable}", details)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and message == "Not Found":
        message = "No such resource."
    if exc.status_code == 405:
        message = "This method is not allowed on this resource."
    headers = dict(exc.headers) if exc.headers else None
    if wants_page(request):
        return error_page(request, exc.status_code, message)
    return error_response(exc.status_code, code, message, None, headers)


# the pixel's, tracked and unsubscribe links (a token follows), the webhooks (a key)
_TOKEN_PATHS = ("/t/", "/c/", "/u/", "/webhooks/")


def unexpected_error(path: str, exc: Exception) -> JSONResponse:
    """The 500 of an exception nothing else handled: logged (never a link's token), its
    details not shown."""
    if path.startswith("/webhooks/"):
        path = "/webhooks/{provider}/{key}"
    elif path.startswith(_TOKEN_PATHS):
        path = path[:3] + "{token}"
    log.error("request.unhandled_error", path=path, error=type(exc).__name__)
    return error_response(500, "internal_error", "Something went wrong on our side.")


class TokenPathErrors:
    """The 500 of an unhandled error under /t/, /c/, /u/ and /webhooks/, answered here and not
    raised on: the server's own report of it would carry the link's token (SQLAlchemy's
    messages show bound values), and raising past the response makes it drop the keep-alive
    connection. Elsewhere Starlette's handler answers and the server logs the traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_TOKEN_PATHS):
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # answered and logged as the app's handler would
            if started:
                raise
            await unexpected_error(scope["path"], exc)(scope, receive, send)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_error(request.url.path, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, _herald_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
