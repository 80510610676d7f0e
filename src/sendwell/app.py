"""create_app(): pages, the /api/v1 application, static files and middleware."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from sendwell import __version__, wiring
from sendwell.accounts import api as accounts_api
from sendwell.accounts import passwords
from sendwell.accounts import web as accounts_web
from sendwell.accounts.auth import SignInRequired, redirect_to_sign_in
from sendwell.campaigns import api as campaigns_api
from sendwell.campaigns import editor_api as campaigns_editor_api
from sendwell.campaigns import editor_web as campaigns_editor_web
from sendwell.campaigns import import_api as campaigns_import_api
from sendwell.campaigns import import_web as campaigns_import_web
from sendwell.campaigns import live_web as campaigns_live_web
from sendwell.campaigns import recipients_api as campaign_recipients_api
from sendwell.campaigns import recipients_web as campaign_recipients_web
from sendwell.campaigns import web as campaigns_web
from sendwell.config import Settings
from sendwell.db import database_is_reachable, make_engine, make_session_factory
from sendwell.delegations import api as delegations_api
from sendwell.delegations import web as delegations_web
from sendwell.dispatch import web as dispatch_web
from sendwell.kit.jobs import JobKind
from sendwell.kit.notices import outgoing_mail
from sendwell.mailboxes import api as mailboxes_api
from sendwell.mailboxes import server_web as mailboxes_server_web
from sendwell.mailboxes import web as mailboxes_web
from sendwell.mailboxes.provider_services import build_services
from sendwell.metrics.web import build_registry as build_metrics_registry
from sendwell.metrics.web import metrics
from sendwell.providers.registry import build_registry, make_http_client
from sendwell.replies import api as replies_api
from sendwell.replies import web as replies_web
from sendwell.sandbox.app import MOUNT_PATH as SANDBOX_MOUNT_PATH
from sendwell.sandbox.app import create_sandbox_app
from sendwell.sandbox.clients import sendwell_clients
from sendwell.sandbox.state import SandboxState
from sendwell.snippets import api as snippets_api
from sendwell.snippets import web as snippets_web
from sendwell.teams import api as teams_api
from sendwell.teams import web as teams_web
from sendwell.web.csrf import CSRFMiddleware
from sendwell.web.deps import no_unknown_query
from sendwell.web.errors import API_ERROR_RESPONSES, add_api_error_handlers, add_page_error_handlers
from sendwell.web.middleware import (
    CONTENT_SECURITY_POLICY,
    BodyLimitMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
    body_limit,
)
from sendwell.web.pages import STATIC_DIR
from sendwell.web.paths import API_PREFIX
from sendwell.webhooks import api as webhooks_api
from sendwell.webhooks import web as webhooks_web

VENDOR_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    background_jobs: bool = False,
    dispatcher: bool = False,
    setup_token: str = "",
) -> FastAPI:
    """The whole web application for one configuration.

    ``background_jobs`` starts the periodic work (connection health checks) with the app;
    `sendwell serve` turns it on, tests drive the same jobs directly. ``setup_token``, when
    given, is asked for when the first account is created.
    """
    wiring.register()
    owns_engine = engine is None
    engine = engine or make_engine(settings.sqlalchemy_url)
    http = make_http_client(settings)
    services = build_services(settings, build_registry(settings, http))
    session_factory = make_session_factory(
        engine, outgoing_mail(settings.smtp_url, settings.base_url)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        wanted = {JobKind.UPKEEP: background_jobs, JobKind.SENDING: dispatcher}
        kinds = [kind for kind, on in wanted.items() if on]
        running = wiring.jobs().start(kinds, settings, session_factory, services)
        passwords.equalise_timing()
        yield
        running.stop()
        http.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Sendwell",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.setup_token = setup_token
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.services = services
    app.state.metrics_registry = build_metrics_registry(session_factory)

    api = create_api()
    api.state.settings = settings
    api.state.engine = engine
    api.state.session_factory = session_factory
    api.state.services = services

    app.include_router(accounts_web.router)
    # Before the campaign pages: their POST /campaigns/{id}/{action} would take test-send.
    app.include_router(campaigns_editor_web.router)
    app.include_router(campaigns_web.router)
    app.include_router(campaign_recipients_web.router)
    app.include_router(campaigns_import_web.router)
    app.include_router(campaigns_live_web.router)
    app.include_router(mailboxes_web.router)
    app.include_router(mailboxes_server_web.router)
    app.include_router(dispatch_web.router)
    app.include_router(webhooks_web.router)
    app.include_router(teams_web.router)
    app.include_router(delegations_web.router)
    app.include_router(snippets_web.router)
    app.include_router(replies_web.router)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.mount(API_PREFIX, api)
    if settings.sandbox:
        # Registered like a real console entry: this server's client and its callback URLs.
        sandbox_state = SandboxState(
            clients=sendwell_clients(
                services.redirect_uri,
                google_publishing_status=settings.google_publishing_status,
                microsoft_secret_expires_at=services.expiry_rules.microsoft_secret_expires_at,
            )
        )
        app.mount(
            SANDBOX_MOUNT_PATH,
            create_sandbox_app(sandbox_state, admin_token=settings.sandbox_admin_token),
        )
    app.mount("/static/vendor", StaticFiles(directory=VENDOR_STATIC_DIR), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_page_error_handlers(app)
    app.exception_handler(SignInRequired)(redirect_to_sign_in)

    # Outermost last: every answer, the CSRF and size refusals included, gets the headers;
    # the size limit wraps the CSRF check, which reads form bodies itself.
    app.add_middleware(
        CSRFMiddleware,
        signing_secret=settings.secret_key,
        cookie_secure=settings.secure_cookies,
    )
    app.add_middleware(BodyLimitMiddleware, limit_for=partial(body_limit, settings))
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestLogMiddleware)
    return app


def create_api() -> FastAPI:
    """The JSON API, its OpenAPI document and its offline interactive docs."""
    api = FastAPI(
        title="Sendwell API",
        version=__version__,
        description="Authenticate with `Authorization: Bearer <token>`; create a token with "
        "`sendwell tokens create --email you@example.com` or on your Account page.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=API_ERROR_RESPONSES,
        dependencies=[Depends(no_unknown_query)],
    )
    api.include_router(accounts_api.router)
    api.include_router(mailboxes_api.router)
    api.include_router(campaigns_editor_api.router)
    api.include_router(campaigns_api.router)
    api.include_router(campaign_recipients_api.router)
    api.include_router(campaigns_import_api.router)
    api.include_router(webhooks_api.router)
    api.include_router(teams_api.router)
    api.include_router(delegations_api.router)
    api.include_router(snippets_api.router)
    api.include_router(replies_api.router)

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title="Sendwell API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
        page.headers["content-security-policy"] = docs_content_security_policy(bytes(page.body))
        return page

    add_api_error_handlers(api)
    return api


def docs_content_security_policy(page: bytes) -> str:
    """The strict policy, allowing only this page's own inline start-up script, by its hash.

    Swagger UI styles the elements it builds, so inline styles are allowed on this page alone.
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(page)
    )
    return CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    ).replace("script-src 'self'", f"script-src 'self' {hashes}")


def healthz(request: Request) -> JSONResponse:
    """Liveness with a real database round trip."""
    if database_is_reachable(request.app.state.engine):
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
