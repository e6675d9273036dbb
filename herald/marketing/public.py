"""Public endpoints in every message (no login): the open pixel and the unsubscribe page.

They are plain Starlette routes, not FastAPI ones: mail clients fetch the pixel by the
thousand, and neither needs FastAPI's parameter parsing or dependencies. The pixel's GET and
the one-click POST are also answered by ``answered_first`` before the app's middleware and
its router (bench/tracking.py measures them against a bare Starlette endpoint).
"""

from __future__ import annotations

import base64
import re

from fastapi import APIRouter
from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from herald.bodylimit import DEFAULT_LIMIT
from herald.db import unit_of_work
from herald.error_handlers import unexpected_error
from herald.marketing.oneclick import Unsubscriber
from herald.marketing.tracking import (
    OpenRecorder,
    Unsubscribed,
    find_send,
    mask_email,
    well_formed,
)
from herald.runtime import Runtime
from herald.web.templating import csp_header, new_nonce, templates

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PIXEL_HEADERS = Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS).raw_headers


async def _send_pixel(state: State, token: str, send: Send) -> None:
    if well_formed(token):
        recorder: OpenRecorder = state.open_recorder
        recorder.hit(token)
    # fresh messages: a middleware may add headers to them
    await send({"type": "http.response.start", "status": 200, "headers": list(_PIXEL_HEADERS)})
    await send({"type": "http.response.body", "body": PIXEL})


class OpenPixel:
    """``GET /t/{name}``: always the same 1x1 GIF, never a cookie; a known token's first
    open is counted (the recorder only buffers it: O(1), no I/O here).

    An ASGI app rather than a function, so the route calls it as it is (no Request object).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path_params"]["name"]
        await _send_pixel(scope["app"].state, name.removesuffix(".gif"), send)


class _Page:
    """A public page rendered by Jinja once, with markers where its values go; each response
    joins the fixed parts with the values escaped as Jinja's autoescape would (the page's
    markup does not depend on them). Rendering the two-level template per request cost as
    much as the rest of the one-click request."""

    FIELDS = ("nonce", "org_name", "email_hint")

    def __init__(self, name: str, **fixed: object) -> None:
        markers = {field: f"\x00{field}\x00" for field in self.FIELDS}
        html = templates.get_template(name).render(**fixed, **markers)
        self.parts = re.split("\x00(" + "|".join(self.FIELDS) + ")\x00", html)

    def render(self, **values: str) -> str:
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(escape(values[parts[i]]))
            out.append(parts[i + 1])
        return "".join(out)


_CONFIRMATION = _Page("public/unsubscribe.html", done=True)
_QUESTION = _Page("public/unsubscribe.html", done=False)
_INVALID_LINK = _Page("public/invalid_link.html")


_PAGE_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]


class _PageResponse(Response):
    """What ``HTMLResponse(html, status, headers=...)`` sends for a public page, byte for
    byte, with the header list built directly: only the nonce and the length change."""

    def __init__(self, html: str, status: int, nonce: str) -> None:
        self.status_code = status
        self.background = None
        self.body = html.encode()
        self.raw_headers = [
            (b"content-security-policy", csp_header(nonce).encode("latin-1")),
            *_PAGE_HEADERS,
            (b"content-length", str(len(self.body)).encode("latin-1")),
            (b"content-type", b"text/html; charset=utf-8"),
        ]


def _page(page: _Page, status: int, org_name: str = "", email_hint: str = "") -> Response:
    nonce = new_nonce()
    return _PageResponse(
        page.render(nonce=nonce, org_name=org_name, email_hint=email_hint), status, nonce
    )


def _invalid_link() -> Response:
    return _page(_INVALID_LINK, 404)


def _look_up(runtime: Runtime, token: str) -> tuple[bool, Unsubscribed] | None:
    """(already unsubscribed, the page's details), one short read-only unit of work."""
    with unit_of_work(runtime.sessions, write=False) as session:
        found = find_send(session, token)
        if found is None:
            return None
        send, org_name = found
        return send.unsubscribed_at is not None, Unsubscribed(org_name, send.email)


# `:path`: a mangled link (an encoded slash in it) still gets the generic page, not a 404
# of the app's own.
async def unsubscribe_page(request: Request) -> Response:
    """``GET /u/{token}`` changes nothing: link scanners fetch it. The page posts back at
    once by script."""
    token = request.path_params["token"]
    # the connection is held for one thread hop only, never across the handler's awaits
    found = await run_in_threadpool(_look_up, request.app.state.runtime, token)
    if found is None:
        return _invalid_link()
    done, details = found
    return _page(
        _CONFIRMATION if done else _QUESTION,
        200,
        org_name=details.org_name,
        email_hint=mask_email(details.email),
    )


async def one_click(app_state: State, token: str) -> Response:
    """The page's own form and RFC 8058 one-click: idempotent, 200, no cookies."""
    if not well_formed(token):
        return _invalid_link()
    unsubscriber: Unsubscriber = app_state.unsubscriber
    details = await unsubscriber.unsubscribe(token)
    if details is None:
        return _invalid_link()
    return _page(
        _CONFIRMATION,
        200,
        org_name=details.org_name,
        email_hint=mask_email(details.email),
    )


async def unsubscribe_post(request: Request) -> Response:
    """``POST /u/{token}``. The body (``List-Unsubscribe=One-Click``, urlencoded or
    multipart) is not needed, so it is not read."""
    return await one_click(request.app.state, request.path_params["token"])


async def answered_first(state: State, scope: Scope, receive: Receive, send: Send) -> bool:
    """The two requests that come by the thousand, the pixel's GET and the one-click POST,
    answered before the app's middleware and router (``herald.app.HeraldApp``): neither the
    page session nor the body limit has anything to do for them, and a flood of them paid
    for each layer. True when answered. Anything else under /t/ and /u/ (HEAD, the page's
    GET, other methods, a body declared over the limit) takes the ordinary way to the same
    routes."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    method = scope["method"]
    try:
        if method == "GET" and path.startswith("/t/"):
            await _send_pixel(state, path[3:].removesuffix(".gif"), send)
            return True
        if method == "POST" and path.startswith("/u/") and not _over_limit(scope):
            response = await one_click(state, path[3:])
            await response(scope, receive, send)
            return True
    except Exception as exc:  # what the app's handler answers, out here too
        await unexpected_error(path, exc)(scope, receive, send)
        return True
    return False


def _over_limit(scope: Scope) -> bool:
    """A body declared over the limit: the ordinary way refuses it with 413."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return not value.isdigit() or int(value) > DEFAULT_LIMIT
    return False


router.routes.append(Route("/t/{name:path}", OpenPixel(), methods=["GET"], include_in_schema=False))
router.add_route("/u/{token:path}", unsubscribe_page, methods=["GET"], include_in_schema=False)
router.add_route("/u/{token:path}", unsubscribe_post, methods=["POST"], include_in_schema=False)
