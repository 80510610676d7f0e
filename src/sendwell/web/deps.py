"""Request-scoped dependencies shared by pages and the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.kit.errors import InvalidInput


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


def get_services(request: Request) -> Any:
    """The app's `ProviderServices` (hosts, discovery, token keys and policy), typed where a
    route takes it (`services: ProviderServices = Depends(get_services)`): the page kit sits
    below the features and names none of their types. Here rather than beside the class, so
    that a sending worker, which imports the mailboxes feature, never loads Starlette."""
    return request.app.state.services


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def no_unknown_query(request: Request) -> None:
    """Refuse a query parameter the route does not declare (422 `unknown_parameter`): a
    misspelt filter (`?stauts=paused`) must not silently answer with everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) if known else "none"
        raise InvalidInput(
            f"Unknown query parameter {unknown[0]!r}; this endpoint accepts: {accepted}.",
            code="unknown_parameter",
        )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {field.alias for field in dependant.query_params}
    for inner in dependant.dependencies:
        names |= _query_names(inner)
    return names
