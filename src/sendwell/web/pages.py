"""Rendering pages, one-time flash messages and the CSRF token for forms."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
FLASH_COOKIE = "sendwell_flash"
FLASH_MAX_AGE_SECONDS = 120

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def csrf_token(request: Request) -> str:
    """The token forms must echo back; the CSRF middleware puts its getter in the scope."""
    getter = request.scope.get("csrftoken")
    return str(getter()) if getter else ""


def local_time(moment: datetime | None, zone: str = "UTC") -> str:
    """A moment as a reader in the campaign's time zone reads it, e.g. "Mon 7 Dec 09:00"."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone or "UTC"))
    return f"{local:%a} {local.day} {local:%b %H:%M}"


templates.env.globals["csrf_token"] = csrf_token
templates.env.globals["local_time"] = local_time


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | DataclassInstance | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the signed-in user, flash message and CSRF token available.

    The context is a dict or a page's view model (a dataclass), whose fields the template
    reads by name."""
    values: dict[str, Any] = {
        "user": getattr(request.state, "user", None),
        "alerts": getattr(request.state, "alerts", []),
        "expiry_alerts": getattr(request.state, "expiry_alerts", []),
        "flash": read_flash(request),
    }
    if isinstance(context, dict):
        values.update(context)
    elif context is not None:
        values.update(fields_of(context))
    response = templates.TemplateResponse(request, template, values, status_code=status_code)
    if values["flash"] is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def fields_of(view: DataclassInstance) -> dict[str, Any]:
    """A view model's fields by name: the objects themselves (`dataclasses.asdict` would turn
    nested view models into dicts and copy every record)."""
    return {field.name: getattr(view, field.name) for field in dataclasses.fields(view)}


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.settings.secret_key, salt="flash")


def redirect_with_flash(
    request: Request, url: str, message: str, *, kind: str = "success"
) -> RedirectResponse:
    """Redirect after a form post and show one message on the next page."""
    response = RedirectResponse(url, status_code=303)
    set_flash(request, response, message, kind=kind)
    return response


def set_flash(request: Request, response: Response, message: str, *, kind: str = "success") -> None:
    settings = request.app.state.settings
    response.set_cookie(
        FLASH_COOKIE,
        _serializer(request).dumps({"message": message, "kind": kind}),
        max_age=FLASH_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request).loads(raw, max_age=FLASH_MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    return {"message": str(data.get("message", "")), "kind": str(data.get("kind", "success"))}
