"""The Inbox page of ``herald dev``: what the local mail catcher received, with the HTML
(sandboxed, as the preview), text and header views. Mounted only in dev mode. Each viewer
sees their own org's messages and those of no org (herald.dev.scope)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from herald.auth.deps import Principal
from herald.dev.mailbox import Mailbox, StoredMessage, Summary
from herald.dev.scope import visible_to
from herald.errors import NotFound
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings
from herald.web.csrf import verify_csrf
from herald.web.deps import page_user
from herald.web.pages import redirect, render

PAGE_SIZE = 50
VIEWS = ("html", "text", "headers")
# The message opens its links in a new tab: the unsubscribe page must run in its own origin,
# never inside this sandbox.
LINKS_IN_NEW_TAB = '<base target="_blank">'
# The preview's policy (no script, only images), with popups allowed out of the sandbox.
MESSAGE_CSP = (
    "default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Principal, Depends(page_user)]


def mailbox(settings: Annotated[Settings, Depends(get_settings_dep)]) -> Mailbox:
    return Mailbox(settings.mailbox_dir)


Box = Annotated[Mailbox, Depends(mailbox)]
Db = Annotated[Session, Depends(get_session, scope="function")]


def _visible(session: Session, principal: Principal, box: Mailbox) -> list[Summary]:
    return visible_to(session, principal.org_id, box.all_summaries())


def _get(session: Session, principal: Principal, box: Mailbox, message_id: str) -> StoredMessage:
    found = box.get(message_id)
    if found is None or not visible_to(session, principal.org_id, [found.summary]):
        raise NotFound("This message is not in the inbox (it may have been cleared).")
    return found


@router.get("/dev/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    principal: Viewer,
    box: Box,
    session: Db,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    shown = _visible(session, principal, box)
    total = len(shown)
    return render(
        request,
        "dev/inbox.html",
        principal,
        messages=shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
    )


@router.get("/dev/inbox/{message_id}", response_class=HTMLResponse)
def message(
    request: Request,
    message_id: str,
    principal: Viewer,
    box: Box,
    session: Db,
    view: Annotated[str, Query(pattern="^(html|text|headers)$")] = "html",
) -> HTMLResponse:
    found = _get(session, principal, box, message_id)
    return render(request, "dev/message.html", principal, message=found, view=view, views=VIEWS)


@router.get("/dev/inbox/{message_id}/html")
def message_html(message_id: str, principal: Viewer, box: Box, session: Db) -> HTMLResponse:
    """The HTML part under the preview's CSP; links open outside the sandbox."""
    found = _get(session, principal, box, message_id)
    if found.html is None:
        raise NotFound("This message has no HTML part.")
    return HTMLResponse(
        LINKS_IN_NEW_TAB + found.html,
        headers={
            "Content-Security-Policy": MESSAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@router.get("/dev/inbox/{message_id}/raw")
def message_raw(message_id: str, principal: Viewer, box: Box, session: Db) -> Response:
    found = _get(session, principal, box, message_id)
    return Response(
        found.raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{message_id}.eml"'},
    )


@router.post("/dev/inbox/clear", dependencies=[Depends(verify_csrf)])
def clear(principal: Viewer, box: Box, session: Db) -> RedirectResponse:
    box.clear(only={m.id for m in _visible(session, principal, box)})
    return redirect("/dev/inbox")
