"""Request-scoped dependencies shared by pages and the API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db import session_scope

CSRF_COOKIE = "csrftoken"
CSRF_NAMESPACE = "csrftoken"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    """The request's unit of work, committed before the response is sent.

    Use with ``Depends(get_db, scope="function")`` so the commit happens as soon as the
    route returns, before the client can act on the answer.
    """
    with session_scope(request.app.state.session_factory) as session:
        yield session


async def check_upload_csrf(request: Request) -> None:
    """CSRF for file uploads: the form's token must match the signed CSRF cookie.

    asgi-csrf cannot read multipart bodies with the installed python-multipart, so upload
    routes are exempt there (see `app.UPLOAD_PATHS`) and checked here instead, the same way:
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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
