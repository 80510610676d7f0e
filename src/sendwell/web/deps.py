"""Request-scoped dependencies shared by pages and the API."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db import session_scope


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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
