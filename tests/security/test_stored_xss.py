"""Stored XSS: hostile campaign and contact data is escaped on every page that shows it, the
email preview is served under a sandboxing CSP, and every HTML page carries a CSP without
'unsafe-inline' scripts (the page routes are walked from the app, so a new page is covered)."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import iter_route_contexts

from tests.crm.factories import unique_email
from tests.marketing.factories import configure_email
from tests.security.hostile import API, fresh_admin, page_headers

admin = pytest.fixture(fresh_admin)

# Each sets window.__pwned when it runs; the markers are what must never reach a page as markup.
PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '<a href="javascript:window.__pwned=1">click</a>',
    '<svg onload="window.__pwned=1"></svg>',
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    '<meta http-equiv="refresh" content="0;url=javascript:window.__pwned=1">',
    '<base href="https://evil.example/">',
    '"><script>window.__pwned=1</script>',
    "'><svg/onload=window.__pwned=1>",
    "</textarea><script>window.__pwned=1</script>",
    "</title><script>window.__pwned=1</script>",
]
MARKERS = re.compile(
    r"<script>window|<img src=x|<a href=\"javascript|<svg|<iframe srcdoc|<meta http-equiv"
    r"|<base href=\"https://evil|</textarea><script|</title><script",
    re.IGNORECASE,
)
HOSTILE = "".join(PAYLOADS)


def hostile_campaign(client, who) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "name": "News " + HOSTILE[:150],
        "fromName": "Acme " + PAYLOADS[1],
        "subject": "Hi " + PAYLOADS[0] + PAYLOADS[3],
        "htmlBody": "<p>Hi {{firstName}}</p>" + HOSTILE,
        "textBody": "Hi {{firstName}}\n" + HOSTILE,
    }
    created = client.post(f"{API}/campaigns", json=body, headers=who.headers)
    assert created.status_code == 201, created.text
    return dict(created.json())


def hostile_contact(client, who) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "email": unique_email("xss"),
        "firstName": PAYLOADS[0],
        "lastName": PAYLOADS[7],
        "companyName": PAYLOADS[3] + PAYLOADS[9],
    }
    created = client.post("/api/crm/contacts", json=body, headers=who.headers)
    assert created.status_code == 201, created.text
    return dict(created.json())


def hostile_bounce(client, who) -> dict:  # type: ignore[no-untyped-def]
    """A bounce report added by API whose reason (and so its raw body) is hostile."""
    body = {"email": unique_email("bounce"), "type": "hard", "reason": HOSTILE[:1900]}
    created = client.post("/api/marketing/bounces", json=body, headers=who.headers)
    assert created.status_code == 201, created.text
    return dict(created.json())


def assert_escaped(response, where: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, (where, response.status_code)
    assert response.headers["content-type"].startswith("text/html"), where
    found = MARKERS.search(response.text)
    assert found is None, (where, response.text[max(found.start() - 200, 0) : found.end() + 50])
    assert "&lt;script&gt;" in response.text, where  # the payload is shown, as text


def test_campaign_and_contact_pages_escape_hostile_data(client, runtime, admin):
    contact = hostile_contact(client, admin)
    configure_email(runtime, admin.org_id)  # a port nobody answers: the sends stay queued
    launched = hostile_campaign(client, admin)
    response = client.post(f"{API}/campaigns/{launched['id']}/launch", headers=admin.headers)
    assert response.status_code == 202, response.text
    draft = hostile_campaign(client, admin)
    report = hostile_bounce(client, admin)
    pages = {
        "list": "/marketing",
        "bounces": "/marketing/bounces",
        "a bounce report as received": f"/marketing/bounces/{report['id']}/raw",
        "detail (draft)": f"/marketing/campaigns/{draft['id']}",
        "form": f"/marketing/campaigns/{draft['id']}/edit",
        "detail (sending)": f"/marketing/campaigns/{launched['id']}",
        "email log": f"/marketing/campaigns/{launched['id']}/log",
        "email log search": f"/marketing/campaigns/{launched['id']}/log?q=%3Cscript%3E",
        "contacts": "/crm/contacts",
        "contacts search": "/crm/contacts?q=%3Cscript%3Ewindow",
        "contact form": f"/crm/contacts/{contact['id']}",
    }
    headers = page_headers(admin)
    for where, path in pages.items():
        assert_escaped(client.get(path, headers=headers), where)


def test_the_preview_is_sandboxed_by_its_own_csp(client, admin):
    draft = hostile_campaign(client, admin)
    response = client.get(
        f"/marketing/campaigns/{draft['id']}/preview", headers=page_headers(admin)
    )
    assert response.status_code == 200
    directives = csp(response)
    assert "sandbox" in directives and directives["sandbox"] == []  # no allow-scripts, nothing
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives  # so default-src 'none' governs scripts
    assert "allow-scripts" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    detail = client.get(f"/marketing/campaigns/{draft['id']}", headers=page_headers(admin))
    frames = re.findall(r"<iframe[^>]*>", detail.text)
    assert frames and all(re.search(r"\ssandbox(\s|>|=\"\")", f) for f in frames), frames


def csp(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    header = response.headers.get("content-security-policy")
    assert header, (str(response.url), "no Content-Security-Policy")
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def page_routes(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every GET route of the app outside the JSON API (pages, public pages, docs)."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if "GET" in (getattr(route, "methods", None) or ()) and not path.startswith("/api/"):
            found.append(path)
    return sorted(set(found))


def test_every_html_page_has_a_csp_without_unsafe_inline_scripts(
    client, runtime, live_server, admin
):
    contact = hostile_contact(client, admin)
    draft = hostile_campaign(client, admin)
    ids = {
        "campaign_id": draft["id"],
        "contact_id": contact["id"],
        "token": "0" * 64,
        "name": "0" * 64 + ".gif",
        "n": "1",
        "message_id": uuid.uuid4().hex,
        "send_id": "1",
        "report_id": str(hostile_bounce(client, admin)["id"]),
    }
    paths = [*page_routes(live_server.server.config.app), "/no/such/page"]
    assert len(paths) >= 15, paths
    assert_csp_on_html(client, admin, [p for p in paths if p not in DOCS_PAGES], ids)


# The Swagger UI page (herald/apidocs.py): its own CSP, scripts only from this app.
DOCS_PAGES = {"/api/docs"}


def test_the_api_docs_page_has_a_csp_too(client, admin):
    assert_csp_on_html(client, admin, sorted(DOCS_PAGES), {})


def assert_csp_on_html(client, who, paths: list[str], ids: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    headers = page_headers(who)
    html_pages = []
    for template in paths:
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids[m.group(1)], template)
        for who in (headers, {"Accept": "text/html"}):  # logged in, and not
            response = client.get(path, headers=who)
            assert response.status_code < 500, (path, response.status_code)
            if not response.headers.get("content-type", "").startswith("text/html"):
                continue
            html_pages.append(path)
            directives = csp(response)
            scripts = directives.get("script-src", directives.get("default-src"))
            assert scripts is not None, path
            assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, path
            assert "*" not in scripts and "data:" not in scripts, path
            assert directives.get("object-src") == ["'none'"] or directives.get("default-src") == [
                "'none'"
            ], path
    assert len(set(html_pages)) >= min(len(paths), 10), html_pages
