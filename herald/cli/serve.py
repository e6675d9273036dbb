"""`herald serve`: the web app."""

from __future__ import annotations

import gc

import typer

from herald.cli.output import require_secret_key
from herald.settings import get_settings

# Python's default is 700 (docs/performance.md, "The one-click POST: the collector ...")
YOUNG_GENERATION = 10_000


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Do not run a sending worker inside this process."
    ),
) -> None:
    """Run the web app and API (and, unless --no-worker, a sending worker)."""
    import uvicorn  # here, not at the top: every other command starts faster without it

    from herald.app import create_app

    settings = get_settings()
    require_secret_key(settings)
    app = create_app(settings, embedded_worker=not no_worker)
    tune_collector()
    # No access log: its lines would carry the tokens of tracking and unsubscribe links.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Forwarded headers only from the proxies named in HERALD_FORWARDED_ALLOW_IPS.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


def tune_collector() -> None:
    """Start-up's objects (modules, routes, mappers, templates) out of the collector's sight,
    and a young generation large enough that a flood's requests in flight die young
    instead of being promoted into full passes over the caches (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
