"""The front door: where `/` takes a logged-in person."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse

from herald.auth.deps import Principal
from herald.web.deps import page_user
from herald.web.pages import navigation, redirect

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(principal: Principal = Depends(page_user)) -> RedirectResponse:
    keys = [item["key"] for item in navigation(principal)]
    return redirect("/marketing" if "marketing" in keys else "/crm/contacts")
