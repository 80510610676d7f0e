"""ASGI middleware: request ids, one structured log line per request, body size limits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendwell.config import Settings
from sendwell.kit.logging import get_logger
from sendwell.web.pages import templates
from sendwell.web.paths import UPLOAD_PATHS

log = get_logger("sendwell.http")


# Paths whose last part is a bearer secret (an unsubscribe or invitation link works for anyone
# who has it).
SECRET_PATH_PREFIXES = ("/u/", "/invitations/")


def loggable_path(path: str) -> str:
    """The path with any secret in it replaced, so request logs hold no usable link."""
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            return f"{prefix}[token]"
    return path


class RequestLogMiddleware:
    """Logs method, path (never the query string), status and duration; sets X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=loggable_path(scope["path"]),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodyTooLarge(HTTPException):
    """A request body over the limit: 413 with a sentence naming the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            413,
            f"This request is larger than Sendwell accepts ({_megabytes(limit_bytes)}). "
            "Send a smaller file or less text, or ask your administrator to raise the limit.",
        )


class BodyLimitMiddleware:
    """Refuses request bodies over the limit for their path, before they are read whole.

    A declared Content-Length over the limit is refused at the first read; a streamed body
    is counted as it arrives. Routes answer the 413 through the app's own error handlers;
    a body refused while the CSRF check reads it gets the same sentence on a plain page.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:
            if started:
                raise
            await _refuse(scope, send, error.detail)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


async def _refuse(scope: Scope, send: Send, message: str) -> None:
    if scope["path"].startswith("/api/"):
        body = json.dumps({"error": {"code": "too_large", "message": message}}).encode()
        content_type = b"application/json"
    else:
        body = templates.get_template("too_large.html").render(message=message).encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", content_type), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def body_limit(settings: Settings, path: str) -> int:
    """The largest body, in bytes, a request to this path may send."""
    megabytes = settings.max_upload_mb if UPLOAD_PATHS.match(path) else settings.max_request_mb
    return int(megabytes * 1_000_000)


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
