"""create_app(): pages, the /api/v1 application, static files and middleware."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import fastapi_offline
from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendwell import __version__
from sendwell.accounts import api as accounts_api
from sendwell.accounts import web as accounts_web
from sendwell.accounts.auth import SignInRequired, sign_in_url
from sendwell.campaigns import api as campaigns_api
from sendwell.campaigns import web as campaigns_web
from sendwell.config import Settings
from sendwell.db import database_is_reachable, make_engine, make_session_factory
from sendwell.dispatch import web as dispatch_web
from sendwell.dispatch.runner import DispatcherThread, build_dispatcher
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes import api as mailboxes_api
from sendwell.mailboxes import web as mailboxes_web
from sendwell.mailboxes.connections import build_connections
from sendwell.mailboxes.tasks import Every, check_connections
from sendwell.providers.registry import build_registry, make_http_client
from sendwell.sandbox.app import MOUNT_PATH as SANDBOX_MOUNT_PATH
from sendwell.sandbox.app import create_sandbox_app
from sendwell.web.deps import CsrfRefused
from sendwell.web.middleware import RequestLogMiddleware
from sendwell.web.pages import STATIC_DIR, render, templates

API_PREFIX = "/api/v1"
VENDOR_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
# The API authenticates by bearer token only, so cookies never carry its authority; the
# sandbox stands in for third-party sites, which have no share in our CSRF cookie; one-click
# unsubscribe links are posted by mail clients and authorised by their signed token.
CSRF_EXEMPT_PREFIXES = (f"{API_PREFIX}/", "/sandbox/", "/u/")
CSRF_ALWAYS_PROTECTED = ["/setup", "/sign-in"]
# File uploads are checked by `web.deps.check_upload_csrf` in the route instead.
UPLOAD_PATHS = re.compile(r"^/campaigns/\d+/recipients/import$")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HTTP_ERROR_CODES = {
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_requests",
}


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    background_jobs: bool = False,
    dispatcher: bool = False,
) -> FastAPI:
    """The whole web application for one configuration.

    ``background_jobs`` starts the periodic work (connection health checks) with the app;
    `sendwell serve` turns it on, tests drive the same jobs directly.
    """
    owns_engine = engine is None
    engine = engine or make_engine(settings.sqlalchemy_url)
    http = make_http_client(settings)
    connections = build_connections(settings, build_registry(settings, http))
    session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        jobs: list[Every | DispatcherThread] = []
        if background_jobs:
            jobs.append(
                Every(
                    settings.health_check_minutes * 60,
                    partial(check_connections, session_factory, connections),
                    "mailbox_health_check",
                )
            )
        if dispatcher:
            jobs.append(
                DispatcherThread(
                    build_dispatcher(settings, session_factory, connections),
                    settings.sqlalchemy_url,
                )
            )
        for job in jobs:
            job.start()
        yield
        for job in jobs:
            job.stop()
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
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.connections = connections

    api = create_api()
    api.state.settings = settings
    api.state.engine = engine
    api.state.session_factory = session_factory
    api.state.connections = connections

    app.include_router(accounts_web.router)
    app.include_router(campaigns_web.router)
    app.include_router(mailboxes_web.router)
    app.include_router(dispatch_web.router)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.mount(API_PREFIX, api)
    if settings.sandbox:
        app.mount(SANDBOX_MOUNT_PATH, create_sandbox_app())
    app.mount("/static/vendor", StaticFiles(directory=VENDOR_STATIC_DIR), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_page_error_handlers(app)

    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        CSRFMiddleware,
        signing_secret=settings.secret_key,
        cookie_secure=settings.secure_cookies,
    )
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
    )
    api.include_router(accounts_api.router)
    api.include_router(mailboxes_api.router)
    api.include_router(campaigns_api.router)

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title="Sendwell API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    _add_api_error_handlers(api)
    return api


def healthz(request: Request) -> JSONResponse:
    """Liveness with a real database round trip."""
    if database_is_reachable(request.app.state.engine):
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _add_api_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(SendwellError)
    async def sendwell_error(_request: Request, error: SendwellError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        retry_after = getattr(error, "retry_after_seconds", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        return JSONResponse(
            error_body(error.code, error.message), status_code=error.status_code, headers=headers
        )

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        if error.status_code == 404:
            message = "No such endpoint or object."
        return JSONResponse(
            error_body(code, message),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in item["loc"][1:]) or "body",
                "message": item["msg"],
            }
            for item in error.errors()
        ]
        if any(item["type"] == "json_invalid" for item in error.errors()):
            return JSONResponse(
                error_body(
                    "malformed_json", "The request body is not valid JSON.", details=problems
                ),
                status_code=422,
            )
        first = problems[0]
        return JSONResponse(
            error_body(
                "invalid_request", f"{first['field']}: {first['message']}", details=problems
            ),
            status_code=422,
        )


def _add_page_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CsrfRefused)
    async def csrf_refused(_request: Request, _error: CsrfRefused) -> Response:
        body = templates.get_template("csrf_failed.html").render()
        return HTMLResponse(body, status_code=403)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(_request: Request, error: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(error.next_path), status_code=303)

    @app.exception_handler(SendwellError)
    async def sendwell_error(request: Request, error: SendwellError) -> Response:
        return render(
            request,
            "error.html",
            {"title": "Something needs your attention", "message": error.message},
            status_code=error.status_code,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        titles = {404: "Page not found", 405: "That action is not available here"}
        message = (
            "There is nothing at this address. Check the link, or go back to Messaging."
            if error.status_code == 404
            else str(error.detail)
        )
        return render(
            request,
            "error.html",
            {"title": titles.get(error.status_code, "Request failed"), "message": message},
            status_code=error.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, _error: RequestValidationError) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "That request was not understood",
                "message": "Part of the address or form is missing or malformed. "
                "Go back and try again.",
            },
            status_code=422,
        )


async def send_csrf_failed(scope: Scope, send: Send, _reason: object) -> None:
    """Answer a form post without a valid CSRF token with a page that says what to do."""
    body = templates.get_template("csrf_failed.html").render().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class CSRFMiddleware:
    """Double-submit CSRF protection (asgi-csrf) on every form post."""

    def __init__(self, app: ASGIApp, *, signing_secret: str, cookie_secure: bool) -> None:
        self.app = asgi_csrf(
            app,
            signing_secret=signing_secret,
            cookie_secure=cookie_secure,
            always_protect=CSRF_ALWAYS_PROTECTED,
            skip_if_scope=lambda scope: (
                scope["path"].startswith(CSRF_EXEMPT_PREFIXES)
                or bool(UPLOAD_PATHS.match(scope["path"]))
            ),
            send_csrf_failed=send_csrf_failed,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Headers every page carries; the API docs page keeps Swagger UI's inline script."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allow_inline = scope["path"] == f"{API_PREFIX}/docs"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not allow_inline:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
