"""Public endpoints in every message (no login): the open pixel and the unsubscribe page."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from herald.marketing.tracking import OpenRecorder, find_send, mask_email, unsubscribe, well_formed
from herald.runtime import get_session
from herald.web.templating import csp_header, new_nonce, templates

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Expires": "0",
}


@router.get("/t/{name:path}")
async def open_pixel(name: str, request: Request) -> Response:
    """Always the same 1x1 GIF, never a cookie; a known token's first open is counted."""
    token = name.removesuffix(".gif")
    if well_formed(token):
        recorder: OpenRecorder = request.app.state.open_recorder
        recorder.hit(token)
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


def _page(request: Request, name: str, status: int, **context: object) -> HTMLResponse:
    nonce = new_nonce()
    response = templates.TemplateResponse(
        request, name, {"nonce": nonce, **context}, status_code=status
    )
    response.headers["Content-Security-Policy"] = csp_header(nonce)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# `:path`: a mangled link (an encoded slash in it) still gets the generic page, not a 404
# of the app's own.
@router.get("/u/{token:path}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, session: Session = Depends(get_session, scope="function")
) -> HTMLResponse:
    """Changes nothing: link scanners fetch it. The page posts back at once by script."""
    found = find_send(session, token)
    if found is None:
        return _page(request, "public/invalid_link.html", 404)
    send, org_name = found
    done = send.unsubscribed_at is not None
    return _page(
        request,
        "public/unsubscribe.html",
        200,
        done=done,
        org_name=org_name,
        email_hint=mask_email(send.email),
    )


@router.post("/u/{token:path}", response_class=HTMLResponse)
def unsubscribe_post(
    token: str, request: Request, session: Session = Depends(get_session, scope="function")
) -> HTMLResponse:
    """The page's own form and RFC 8058 one-click: idempotent, 200, no cookies.

    The body (``List-Unsubscribe=One-Click``, urlencoded or multipart) is not needed.
    """
    found = find_send(session, token)
    if found is None:
        return _page(request, "public/invalid_link.html", 404)
    send, org_name = found
    unsubscribe(session, send)
    return _page(
        request,
        "public/unsubscribe.html",
        200,
        done=True,
        org_name=org_name,
        email_hint=mask_email(send.email),
    )
