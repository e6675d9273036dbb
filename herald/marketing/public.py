"""Public endpoints in every message (no login): the open pixel, tracked links and the
unsubscribe page.

Ordinary FastAPI routes behind the app's middleware; none of them sets a cookie (the
page session leaves these paths alone, ``herald.web.session``).
"""

from __future__ import annotations

import base64
import functools
import itertools
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from herald.mail.links import TRAP_LINK
from herald.marketing.classify import HitClassifier
from herald.marketing.clicks import ClickHit
from herald.marketing.hits import HitRecorder
from herald.marketing.links import LinkTargets, NotKept
from herald.marketing.opens import OpenHit
from herald.marketing.tokens import well_formed
from herald.marketing.unsubscribe import Unsubscribed, Unsubscriber, page_details
from herald.runtime import get_session
from herald.web.templating import csp_header, templates

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
REDIRECT_HEADERS = {
    # every click must reach Herald to be counted; the target learns nothing of the message
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
MAX_LINK_DIGITS = 6
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


# `:path` on every route: a mangled link (an encoded slash in it) still gets the GIF or the
# generic page, not a 404 of the app's own.
async def open_pixel(request: Request) -> Response:
    """Always the same 1x1 GIF; a known token's first open is counted (buffered, no I/O
    here). The name is read from the path as it is: nothing to validate in it."""
    token = request.path_params["name"].removesuffix(".gif")
    if well_formed(token):
        recorder: HitRecorder[OpenHit] = request.app.state.open_recorder
        recorder.hit((token, _machine_reason(request)))
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


_click_numbers = itertools.count()


async def tracked_link(request: Request) -> Response:
    """302 to link n of the send's own campaign, merged for its contact, and a click
    counted (buffered); anything else gets the generic page and no redirect. HEAD answers
    the same (and counts a machine click). The trap link counts and leads nowhere."""
    token, number = request.path_params["token"], request.path_params["n"]
    if not (well_formed(token) and number.isdigit() and len(number) <= MAX_LINK_DIGITS):
        return _invalid_link()
    link = int(number)
    state = request.app.state
    target = None
    if link != TRAP_LINK:
        targets: LinkTargets = state.link_targets
        known = targets.known(token, link)  # no await when the send is kept
        target = await targets.target(token, link) if isinstance(known, NotKept) else known
        if target is None:
            return _invalid_link()
    recorder: HitRecorder[ClickHit] = state.click_recorder
    reason = _machine_reason(request, link)
    recorder.hit(ClickHit(token, time.time(), next(_click_numbers), link, reason))
    if target is None:
        return _invalid_link()
    return _Redirect(target)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Fixed headers as they go out, encoded once: the redirect and the pages are hot paths."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


_REDIRECT_RAW_HEADERS = _encoded({**REDIRECT_HEADERS, "Content-Length": "0"})


class _Redirect(Response):
    """The 302 of a tracked link, its headers as they go out (none to parse or count)."""

    def __init__(self, location: str) -> None:
        self.status_code = 302
        self.background = None
        self.body = b""
        self.raw_headers = [(b"location", location.encode("ascii")), *_REDIRECT_RAW_HEADERS]


def _machine_reason(request: Request, link: int | None = None) -> str:
    """The request's machine reason ("" for none); its address and agent go no further.
    Read from the ASGI scope as it is (the pixel's hot path builds no header or client
    objects)."""
    scope = request.scope
    classifier: HitClassifier = request.app.state.hit_classifier
    client = scope.get("client")
    agent = ""
    for name, value in scope["headers"]:
        if name == b"user-agent":
            agent = value.decode("latin-1")
            break
    reason = classifier.verdict(scope["method"], client[0] if client else None, agent, link)
    return reason.value if reason else ""


# Before the GET: the router tries routes in order, and a path that matches with another
# method sends it on through every route in the app.
async def one_click(request: Request) -> HTMLResponse:
    """The page's own form and RFC 8058 one-click: idempotent, 200, no cookies. The body
    (``List-Unsubscribe=One-Click``, urlencoded or multipart) is not needed, nor read; the
    token is checked here, as it is."""
    token = request.path_params["token"]
    if not well_formed(token):
        return _invalid_link()
    unsubscriber: Unsubscriber = request.app.state.unsubscriber
    details = await unsubscriber.unsubscribe(token)
    if details is None:
        return _invalid_link()
    return _unsubscribe_page(details, done=True)


router.add_route("/t/{name:path}", open_pixel, methods=["GET", "HEAD"])
router.add_route("/c/{token}/{n:path}", tracked_link, methods=["GET", "HEAD"])
router.add_route("/u/{token:path}", one_click, methods=["POST"])


@router.api_route("/u/{token:path}", methods=["GET", "HEAD"])
def unsubscribe_page(
    token: str, request: Request, session: Session = Depends(get_session)
) -> HTMLResponse:
    """Changes nothing: link scanners fetch it. The page posts back at once by script."""
    found = page_details(session, token)
    if found is None:
        return _invalid_link()
    done, details = found
    return _unsubscribe_page(details, done=done)


def _unsubscribe_page(details: Unsubscribed, done: bool) -> HTMLResponse:
    state = "unsubscribed" if done else "unsubscribe"
    return _page(200, state, details.org_name, details.email_hint)


def _invalid_link() -> HTMLResponse:
    return _page(404, "invalid")


def _page(status: int, state: str, org_name: str = "", email_hint: str = "") -> HTMLResponse:
    """A public page: none of the app's layout, CSRF or session, and no inline code."""
    # while developing, templates are re-read on change: so is the page
    render = _rendered.__wrapped__ if templates.env.auto_reload else _rendered
    return _Page(status, render(state, org_name, email_hint))


# A page depends on these values alone (no nonce, no request): a flood of one-click POSTs
# renders each org's page for a hint once, not once per request (docs/performance.md).
@functools.lru_cache(maxsize=4096)
def _rendered(state: str, org_name: str, email_hint: str) -> bytes:
    """Rendered straight from the template with only its own values (none of the
    environment's globals, which it does not use)."""
    context = {"state": state, "org_name": org_name, "email_hint": email_hint}
    page = templates.get_template("public/page.html").make_module(context, shared=True)
    return str(page).encode("utf-8")


_PAGE_RAW_HEADERS = _encoded({"Content-Security-Policy": csp_header(), **PAGE_HEADERS})
_HTML = (b"content-type", b"text/html; charset=utf-8")


class _Page(HTMLResponse):
    """A public page with its headers as they go out (none to parse or count)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = [
            *_PAGE_RAW_HEADERS,
            (b"content-length", str(len(body)).encode("latin-1")),
            _HTML,
        ]
