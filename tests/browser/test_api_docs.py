"""/api/docs in Chromium: Swagger UI renders every operation from this app's own files,
under its CSP, with no request leaving the machine."""

from __future__ import annotations

from urllib.parse import urlparse


def test_the_api_reference_renders_without_a_cdn(page, web):
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname or ""))
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.goto("/api/docs")
    page.wait_for_selector(
        ".opblock", timeout=60_000
    )  # Swagger UI builds every operation: slow on a loaded machine
    operations = page.locator(".opblock").count()
    openapi = page.request.get("/api/openapi.json").json()
    documented = sum(len(methods) for methods in openapi["paths"].values())
    assert operations == documented
    assert page.get_by_role("button", name="Authorize").is_visible()
    assert hosts == {"127.0.0.1"}
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
