"""The FastAPI app factory: routers, error handlers, health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from herald.apidocs import install_api_docs
from herald.audit.routes import router as audit_router
from herald.audit.views import router as audit_pages
from herald.auth.routes import router as auth_router
from herald.auth.views import router as account_pages
from herald.bodylimit import BodyLimit
from herald.bounces.jobs import BounceJobs
from herald.bounces.routes import router as bounces_router
from herald.bounces.views import router as bounces_pages
from herald.bounces.webhooks.inbox import WebhookInbox
from herald.bounces.webhooks.keys import WebhookKeys
from herald.bounces.webhooks.routes import router as webhooks_router
from herald.bounces.webhooks.sns import SnsVerifier
from herald.crm.routes import router as crm_router
from herald.crm.views import router as crm_pages
from herald.error_handlers import TokenPathErrors, error_response, install_error_handlers
from herald.log import configure_logging
from herald.mailconfig.routes import router as mailconfig_router
from herald.mailconfig.views import router as mailconfig_pages
from herald.marketing.campaign_form import router as campaign_form_pages
from herald.marketing.classify import HitClassifier
from herald.marketing.clicks import click_recorder
from herald.marketing.links import LinkTargets
from herald.marketing.opens import open_recorder
from herald.marketing.public import router as public_router
from herald.marketing.routes import router as marketing_router
from herald.marketing.unsubscribe import Unsubscriber
from herald.marketing.views import router as marketing_pages
from herald.openapi import error_responses, install_openapi
from herald.orgs.routes import router as orgs_router
from herald.orgs.views import router as orgs_pages
from herald.runtime import Runtime
from herald.schemas import HealthOut
from herald.settings import Settings, get_settings
from herald.web.session import SilentRefresh
from herald.web.templating import STATIC_DIR, templates


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    embedded_worker: bool = False,
) -> FastAPI:
    """The web app; ``embedded_worker`` also runs a sending worker in this process."""
    settings = settings or (runtime.settings if runtime else get_settings())
    if problem := settings.secret_key_problem():
        raise ValueError(problem)
    configure_logging(settings.log_level, settings.log_json)
    runtime = runtime or Runtime.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recorder = open_recorder(runtime, settings.open_flush_seconds)
        app.state.open_recorder = recorder
        app.state.unsubscriber = unsubscriber = Unsubscriber(runtime)
        app.state.webhook_inbox = inbox = WebhookInbox(runtime)
        app.state.webhook_keys = WebhookKeys(runtime)
        app.state.sns_verifier = sns_verifier = SnsVerifier(settings.sns_cert_host_patterns)
        recorder.start()
        app.state.click_recorder = clicks = click_recorder(runtime, settings.open_flush_seconds)
        app.state.link_targets = link_targets = LinkTargets(runtime)
        clicks.start()
        worker = None
        bounce_jobs: tuple[BounceJobs, asyncio.Task[None]] | None = None
        if embedded_worker:
            from herald.marketing.embedded import EmbeddedWorker

            worker = EmbeddedWorker(runtime)
            worker.start()
            jobs = BounceJobs(runtime)
            bounce_jobs = (jobs, asyncio.create_task(jobs.run()))
        try:
            yield
        finally:
            if bounce_jobs:
                bounce_jobs[0].stop()
                await bounce_jobs[1]
            if worker:
                await asyncio.to_thread(worker.stop)
            try:
                await recorder.stop()
                await clicks.stop()
            finally:
                await unsubscriber.close()
                await link_targets.close()
                await inbox.close()
                await sns_verifier.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Herald",
        summary="Bulk email campaigns for CRM contacts.",
        version="0.1.0",
        docs_url=None,  # herald.apidocs serves it, without a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
        # Herald exports no OpenTelemetry; FastAPI would otherwise ask per request whether to
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.hit_classifier = HitClassifier(settings.apple_networks)
    # templates ship inside the package: re-read them on change only while developing
    templates.env.auto_reload = settings.env == "dev"
    app.add_middleware(SilentRefresh, runtime=runtime)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(TokenPathErrors)
    # First, before even the OpenAPI route FastAPI added: the pixel, tracked and unsubscribe
    # links are most of the traffic, and the router tries its routes in order. As the app
    # router's own routes, since FastAPI matches an included router's routes in two passes
    # (docs/performance.md).
    app.router.routes[0:0] = public_router.routes
    app.router.routes.extend(webhooks_router.routes)  # mail services' calls come in bursts too
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_handlers(app)
    install_openapi(app)
    install_api_docs(app)
    app.include_router(auth_router)
    for router in _area_routers():
        app.include_router(router)
    if settings.env == "dev":
        from herald.dev.views import router as inbox_pages

        app.include_router(inbox_pages)

    @app.get("/healthz", tags=["health"], response_model=HealthOut, responses=error_responses(503))
    def healthz() -> JSONResponse:
        """200 once the app can reach its database (no login)."""
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any database failure means "not healthy", reported, not raised
            return error_response(503, "database_unavailable", "The database cannot be reached.")
        return JSONResponse({"status": "ok"})

    return app


def _area_routers() -> list[APIRouter]:
    return [
        crm_router,
        mailconfig_router,
        marketing_router,
        bounces_router,
        orgs_router,
        audit_router,
        campaign_form_pages,  # before marketing_pages: /marketing/campaigns/new is no id
        marketing_pages,
        bounces_pages,
        crm_pages,
        mailconfig_pages,
        orgs_pages,
        account_pages,
        audit_pages,
    ]
