"""create_app(): pages, the /api/v1 application, static files and middleware."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
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
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendwell import __version__, wiring
from sendwell.accounts import api as accounts_api
from sendwell.accounts import web as accounts_web
from sendwell.accounts.auth import SignInRequired, sign_in_url
from sendwell.campaigns import api as campaigns_api
from sendwell.campaigns import web as campaigns_web
from sendwell.config import Settings
from sendwell.db import database_is_reachable, make_engine, make_session_factory
from sendwell.delegations import api as delegations_api
from sendwell.delegations import web as delegations_web
from sendwell.dispatch import web as dispatch_web
from sendwell.dispatch.runner import DispatcherThread, build_dispatcher
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes import api as mailboxes_api
from sendwell.mailboxes import server_web as mailboxes_server_web
from sendwell.mailboxes import web as mailboxes_web
from sendwell.mailboxes.connections import build_connections
from sendwell.mailboxes.tasks import Every, check_due_connections
from sendwell.metrics.web import build_registry as build_metrics_registry
from sendwell.metrics.web import metrics
from sendwell.providers.registry import build_registry, make_http_client
from sendwell.sandbox.app import MOUNT_PATH as SANDBOX_MOUNT_PATH
from sendwell.sandbox.app import create_sandbox_app
from sendwell.sandbox.clients import sendwell_clients
from sendwell.sandbox.state import SandboxState
from sendwell.teams import api as teams_api
from sendwell.teams import web as teams_web
from sendwell.web.deps import CsrfRefused
from sendwell.web.middleware import BodyLimitMiddleware, RequestLogMiddleware
from sendwell.web.pages import STATIC_DIR, render, templates
from sendwell.webhooks import api as webhooks_api
from sendwell.webhooks import web as webhooks_web
from sendwell.webhooks.runner import DelivererThread, build_deliverer

API_PREFIX = "/api/v1"
VENDOR_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
# The API authenticates by bearer token only, so cookies never carry its authority; the
# sandbox stands in for third-party sites, which have no share in our CSRF cookie; one-click
# unsubscribe links are posted by mail clients and authorised by their signed token.
CSRF_EXEMPT_PREFIXES = (f"{API_PREFIX}/", "/sandbox/", "/u/")
CSRF_ALWAYS_PROTECTED = ["/setup", "/sign-in"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# File uploads are checked by `web.deps.check_upload_csrf` in the route instead.
UPLOAD_PATHS = re.compile(r"^/campaigns/\d+/recipients/import$")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
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
    connections = build_connections(settings, build_registry(settings, http))
    session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        jobs: list[Every | DispatcherThread | DelivererThread] = []
        if background_jobs:
            interval = timedelta(minutes=settings.health_check_minutes)
            jobs.append(
                Every(
                    interval.total_seconds(),
                    partial(check_due_connections, session_factory, connections, interval),
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
            jobs.append(DelivererThread(build_deliverer(settings, session_factory)))
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
    app.state.setup_token = setup_token
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.connections = connections
    app.state.metrics_registry = build_metrics_registry(session_factory)

    api = create_api()
    api.state.settings = settings
    api.state.engine = engine
    api.state.session_factory = session_factory
    api.state.connections = connections

    app.include_router(accounts_web.router)
    app.include_router(campaigns_web.router)
    app.include_router(mailboxes_web.router)
    app.include_router(mailboxes_server_web.router)
    app.include_router(dispatch_web.router)
    app.include_router(webhooks_web.router)
    app.include_router(teams_web.router)
    app.include_router(delegations_web.router)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.mount(API_PREFIX, api)
    if settings.sandbox:
        # Registered like a real console entry: this server's client and its callback URLs.
        sandbox_state = SandboxState(
            clients=sendwell_clients(
                connections.redirect_uri,
                google_publishing_status=settings.google_publishing_status,
                microsoft_secret_expires_at=connections.expiry_rules.microsoft_secret_expires_at,
            )
        )
        app.mount(
            SANDBOX_MOUNT_PATH,
            create_sandbox_app(sandbox_state, admin_token=settings.sandbox_admin_token),
        )
    app.mount("/static/vendor", StaticFiles(directory=VENDOR_STATIC_DIR), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_page_error_handlers(app)

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
    )
    api.include_router(accounts_api.router)
    api.include_router(mailboxes_api.router)
    api.include_router(campaigns_api.router)
    api.include_router(webhooks_api.router)
    api.include_router(teams_api.router)
    api.include_router(delegations_api.router)

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

    _add_api_error_handlers(api)
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


def body_limit(settings: Settings, path: str) -> int:
    """The largest body, in bytes, a request to this path may send."""
    megabytes = settings.max_upload_mb if UPLOAD_PATHS.match(path) else settings.max_request_mb
    return int(megabytes * 1_000_000)


def healthz(request: Request) -> JSONResponse:
    """Liveness with a real database round trip."""
    if database_is_reachable(request.app.state.engine):
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


class FieldProblem(BaseModel):
    field: str = Field(description="Where in the request, e.g. `steps.0.subject` or `body`.")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for programs: `not_found`, `invalid_request`, …")
    message: str = Field(description="A sentence for people.")
    details: list[FieldProblem] | None = Field(
        default=None, description="Each invalid field (422 `invalid_request` only)."
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


API_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "The request body could not be read.",
        401: "No API token, or one that is not valid or was revoked.",
        403: "Not allowed.",
        404: "No such endpoint, or no such object among those you can see.",
        409: "The object's state does not allow this now.",
        413: "The request body is larger than the server accepts.",
        422: "The request is malformed or a value is not acceptable.",
        429: "Too many attempts; `Retry-After` says when to try again.",
    }.items()
}


# A value the database cannot hold — an id or offset beyond its integers, which names no row —
# is the request's fault wherever it came from: SQLite's driver refuses to bind it
# (OverflowError), PostgreSQL refuses the query (DataError). Both roll the unit of work back.
DOES_NOT_FIT = (OverflowError, DataError)
DOES_NOT_FIT_MESSAGE = "A value in the request is larger than Sendwell can store."


def _add_api_error_handlers(api: FastAPI) -> None:
    async def does_not_fit(_request: Request, _error: Exception) -> JSONResponse:
        return JSONResponse(error_body("out_of_range", DOES_NOT_FIT_MESSAGE), status_code=422)

    for kind in DOES_NOT_FIT:
        api.add_exception_handler(kind, does_not_fit)

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
        if request.url.path.startswith(f"{API_PREFIX}/"):
            # An API address the sub-application's routes cannot even parse (a line break in
            # the path) lands here; its answer is JSON all the same.
            code = HTTP_ERROR_CODES.get(error.status_code, "http_error")
            message = "No such endpoint or object." if error.status_code == 404 else error.detail
            return JSONResponse(error_body(code, str(message)), status_code=error.status_code)
        titles = {
            404: "Page not found",
            405: "That action is not available here",
            413: "That was too large",
        }
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

    async def does_not_fit(request: Request, _error: Exception) -> Response:
        return render(
            request,
            "error.html",
            {"title": "That request was not understood", "message": DOES_NOT_FIT_MESSAGE},
            status_code=422,
        )

    for kind in DOES_NOT_FIT:
        app.add_exception_handler(kind, does_not_fit)

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
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope["path"].startswith(CSRF_EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        # asgi-csrf lets any "Authorization: Bearer" through unchecked; no page takes a bearer
        # token for a post (only GET /metrics reads one), so the header is dropped and the form
        # is checked as any other.
        headers = [(name, value) for name, value in scope["headers"] if name != b"authorization"]
        scope = {**scope, "headers": headers}
        if _unreadable_form(scope, headers):
            await send_csrf_failed(scope, send, "multipart")
            return
        await self.app(scope, receive, send)


def _unreadable_form(scope: Scope, headers: list[tuple[bytes, bytes]]) -> bool:
    """A multipart post with cookies to a page other than the upload: none of our forms.

    asgi-csrf cannot parse multipart bodies with the installed python-multipart (a malformed
    one was a 500); only the CSV upload sends one, and its route checks the token itself.
    """
    found = dict(headers)
    return (
        bool(found.get(b"cookie"))
        and found.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        == b"multipart/form-data"
        and not UPLOAD_PATHS.match(scope["path"])
    )


class SecurityHeadersMiddleware:
    """Headers every answer carries; a route's own policy (the API docs page's) is kept.

    Nothing but static assets may be cached: pages and API answers can hold a user's data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                if not cacheable and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
