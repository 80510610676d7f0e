"""CSRF protection, all of it: the double-submit middleware (asgi-csrf) on every form post,
the check that file-upload routes make themselves, and the "form expired" answer."""

from __future__ import annotations

import secrets

from asgi_csrf import asgi_csrf
from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

from sendwell.web.pages import templates
from sendwell.web.paths import API_PREFIX, UPLOAD_PATHS

CSRF_COOKIE = "csrftoken"
CSRF_NAMESPACE = "csrftoken"
# The API authenticates by bearer token only, so cookies never carry its authority; the
# sandbox stands in for third-party sites, which have no share in our CSRF cookie; one-click
# unsubscribe links are posted by mail clients and authorised by their signed token.
CSRF_EXEMPT_PREFIXES = (f"{API_PREFIX}/", "/sandbox/", "/u/")
CSRF_ALWAYS_PROTECTED = ["/setup", "/sign-in"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


async def check_upload_csrf(request: Request) -> None:
    """CSRF for file uploads: the form's token must match the signed CSRF cookie.

    asgi-csrf cannot read multipart bodies with the installed python-multipart, so upload
    routes are exempt there (`UPLOAD_PATHS`) and checked here instead, the same way:
    a double-submitted token whose signature this server made.
    """
    form = await request.form()
    sent = str(form.get("csrftoken") or "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    signer = URLSafeSerializer(request.app.state.settings.secret_key)
    try:
        signer.loads(cookie, CSRF_NAMESPACE)
    except BadSignature:
        raise CsrfRefused from None
    if not cookie or not secrets.compare_digest(sent, cookie):
        raise CsrfRefused


class CsrfRefused(Exception):
    """A form post without a valid CSRF token: answered with the "form expired" page."""


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
