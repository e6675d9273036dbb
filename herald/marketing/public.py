"""Public endpoints in every message (no login): the open pixel and the unsubscribe page.

Ordinary FastAPI routes behind the app's middleware; none of them sets a cookie (the
page session leaves these paths alone, ``herald.web.session``).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from herald.marketing.hits import HitRecorder
from herald.marketing.tokens import well_formed
from herald.marketing.unsubscribe import Unsubscribed, Unsubscriber, page_details
from herald.runtime import get_session
from herald.web.templating import csp_header, new_nonce, templates

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
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
        recorder: HitRecorder[str] = request.app.state.open_recorder
        recorder.hit(token)
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


# Before the GET: the router tries routes in order, and a path that matches with another
# method sends it on through every route in the app.
async def one_click(request: Request) -> HTMLResponse:
    """The page's own form and RFC 8058 one-click: idempotent, 200, no cookies. The body
    (``List-Unsubscribe=One-Click``, urlencoded or multipart) is not needed, nor read; the
    token is checked here, as it is."""
    token = request.path_params["token"]
    if not well_formed(token):
        return _invalid_link(request)
    unsubscriber: Unsubscriber = request.app.state.unsubscriber
    details = await unsubscriber.unsubscribe(token)
    if details is None:
        return _invalid_link(request)
    return _unsubscribe_page(request, details, done=True)


router.add_route("/t/{name:path}", open_pixel, methods=["GET", "HEAD"])
router.add_route("/u/{token:path}", one_click, methods=["POST"])


@router.api_route("/u/{token:path}", methods=["GET", "HEAD"])
def unsubscribe_page(
    token: str, request: Request, session: Session = Depends(get_session)
) -> HTMLResponse:
    """Changes nothing: link scanners fetch it. The page posts back at once by script."""
    found = page_details(session, token)
    if found is None:
        return _invalid_link(request)
    done, details = found
    return _unsubscribe_page(request, details, done=done)


def _unsubscribe_page(request: Request, details: Unsubscribed, done: bool) -> HTMLResponse:
    return _page(
        200,
        state="unsubscribed" if done else "unsubscribe",
        org_name=details.org_name,
        email_hint=details.email_hint,
    )


def _invalid_link(request: Request) -> HTMLResponse:
    return _page(404, state="invalid")


def _page(status: int, **context: Any) -> HTMLResponse:
    """A public page: none of the app's layout, CSRF or session, its own nonce. Rendered
    straight from the template (no request context: these pages need none)."""
    nonce = new_nonce()
    html = templates.get_template("public/page.html").render(nonce=nonce, **context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Content-Security-Policy": csp_header(nonce), **PAGE_HEADERS},
    )
