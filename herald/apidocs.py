"""/api/docs: the interactive API reference (Swagger UI), served from this app.

Swagger UI's files come from the `fastapi-offline` package (PyPI), so the page loads nothing
from a CDN, and it runs under a CSP like every other page: its one inline script carries the
response's nonce."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from herald.web.templating import new_nonce

ASSETS_URL = "/api/docs/assets"


def _assets_dir() -> Path:
    spec = importlib.util.find_spec("fastapi_offline")
    assert spec is not None and spec.submodule_search_locations, "fastapi-offline is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _csp(nonce: str) -> str:
    # Swagger UI styles its widgets inline; scripts stay ours (nonce) and same-origin only.
    return (
        "default-src 'none'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "base-uri 'none'; "
        "form-action 'none'; "
        "object-src 'none'; "
        "frame-ancestors 'none'"
    )


def _page(title: str, openapi_url: str, nonce: str) -> str:
    config = json.dumps(
        {
            "url": openapi_url,
            "dom_id": "#swagger-ui",
            "deepLinking": True,
            "persistAuthorization": False,
            "tryItOutEnabled": False,
        }
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API reference</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
<link rel="icon" href="{ASSETS_URL}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script nonce="{nonce}">
window.ui = SwaggerUIBundle(Object.assign({config}, {{
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout"
}}));
</script>
</body>
</html>
"""


def install_api_docs(app: FastAPI, path: str = "/api/docs") -> None:
    """Serve Swagger UI at ``path`` (create the app with docs_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="api-docs-assets")
    router = APIRouter(include_in_schema=False)

    @router.get(path)
    def api_docs() -> HTMLResponse:
        nonce = new_nonce()
        return HTMLResponse(
            _page(app.title, app.openapi_url or "/api/openapi.json", nonce),
            headers={
                "Content-Security-Policy": _csp(nonce),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    app.include_router(router)
