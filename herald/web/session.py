"""The pages' login session: the API's own tokens, kept in HttpOnly cookies.

``herald_access`` holds the JWT access token, ``herald_refresh`` the opaque refresh token;
both are SameSite=Strict, so no other site can make a browser send them. An expired access
token is refreshed silently by ``SilentRefresh`` before the page's handler runs.
"""

from __future__ import annotations

import asyncio
import time
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.auth import service
from herald.auth.tokens import decode_access_token, hash_refresh_token
from herald.db import unit_of_work
from herald.errors import NotAuthenticated
from herald.runtime import Runtime
from herald.settings import Settings

ACCESS_COOKIE = "herald_access"
REFRESH_COOKIE = "herald_refresh"
# Requests that never carry a page session: the API uses Authorization headers, and the
# public endpoints in messages must stay cookie-free.
SKIP_PREFIXES = ("/api/", "/t/", "/c/", "/u/", "/static/", "/healthz")


def _cookie(name: str, value: str, settings: Settings, max_age: int) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    morsel["max-age"] = max_age
    if settings.https:
        morsel["secure"] = True
    return morsel.OutputString()


def session_cookies(settings: Settings, access: str, refresh: str) -> list[str]:
    lifetime = settings.refresh_token_days * 86400
    return [
        _cookie(ACCESS_COOKIE, access, settings, lifetime),
        _cookie(REFRESH_COOKIE, refresh, settings, lifetime),
    ]


def cleared_cookies(settings: Settings) -> list[str]:
    return [_cookie(ACCESS_COOKIE, "", settings, 0), _cookie(REFRESH_COOKIE, "", settings, 0)]


def set_session(response: Response, settings: Settings, access: str, refresh: str) -> None:
    for header in session_cookies(settings, access, refresh):
        response.headers.append("set-cookie", header)


def clear_session(response: Response, settings: Settings) -> None:
    for header in cleared_cookies(settings):
        response.headers.append("set-cookie", header)


def _access_is_usable(settings: Settings, token: str | None) -> bool:
    if not token:
        return False
    try:
        decode_access_token(settings, token)
    except NotAuthenticated:
        return False
    return True


class SilentRefresh:
    """ASGI middleware: for page requests whose access cookie is missing or expired but
    whose refresh cookie is good, rotate the tokens, hand the handler the new access token
    and send the browser the new cookies. A refresh that fails clears both cookies."""

    # Two requests of one browser (a page and its polling, two tabs) may both find the
    # access token expired. The refresh token may be used once, so the second would look
    # like a replay and sign the person out: within this process, it gets the first one's
    # result instead.
    REUSE_SECONDS = 60.0

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._lock = asyncio.Lock()
        self._recent: dict[str, tuple[float, list[str] | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SKIP_PREFIXES):
            await self.app(scope, receive, send)
            return
        cookies = _request_cookies(scope)
        settings = self.runtime.settings
        refresh_token = cookies.get(REFRESH_COOKIE)
        if not refresh_token or _access_is_usable(settings, cookies.get(ACCESS_COOKIE)):
            await self.app(scope, receive, send)
            return
        set_cookies = await self._refresh(refresh_token)
        if set_cookies is None:
            cookies.pop(ACCESS_COOKIE, None)
            cookies.pop(REFRESH_COOKIE, None)
            set_cookies = cleared_cookies(settings)
        else:
            cookies[ACCESS_COOKIE] = set_cookies[0].split(";", 1)[0].split("=", 1)[1]
        scope = _with_cookies(scope, cookies)

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for header in set_cookies:
                    headers.append("set-cookie", header)
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    async def _refresh(self, token: str) -> list[str] | None:
        key = hash_refresh_token(token)
        async with self._lock:
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if v[0] > now}
            if key in self._recent:
                # not after a logout or a sign-out everywhere: those revoke the spent token too
                if await asyncio.to_thread(self._revoked, key):
                    self._recent.pop(key)
                    return None
                return self._recent[key][1]
            cookies = await self._rotate(token)
            self._recent[key] = (now + self.REUSE_SECONDS, cookies)
            return cookies

    def _revoked(self, token_hash: str) -> bool:
        with unit_of_work(self.runtime.sessions, write=False) as session:
            return service.is_revoked(session, token_hash)

    async def _rotate(self, token: str) -> list[str] | None:
        def rotate() -> list[str] | None:
            try:
                with unit_of_work(self.runtime.sessions) as session:
                    issued = service.refresh(session, self.runtime.settings, token)
                    return session_cookies(
                        self.runtime.settings, issued.access_token, issued.refresh_token
                    )
            except NotAuthenticated:
                return None

        return await asyncio.to_thread(rotate)


def _request_cookies(scope: Scope) -> dict[str, str]:
    """Cookies as Starlette's Request would read them (lenient with malformed headers)."""
    cookies: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    return cookies


def _with_cookies(scope: Scope, cookies: dict[str, str]) -> dict[str, Any]:
    headers = [(k, v) for k, v in scope.get("headers", []) if k != b"cookie"]
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    return {**scope, "headers": headers}
