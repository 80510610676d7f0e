"""GET /metrics in Prometheus' text format, for a scraper holding the metrics token."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from sendwell.metrics.collector import DatabaseCollector, ProcessCollector


def build_registry(factory: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(factory))
    registry.register(ProcessCollector())
    return registry


def metrics(request: Request) -> Response:
    """404 while no token is set (the endpoint does not exist); 401 without the right token."""
    token: str = request.app.state.settings.metrics_token
    if not token:
        return PlainTextResponse("Not found.\n", status_code=404)
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip(), token):
        return PlainTextResponse(
            "Send the metrics token: Authorization: Bearer <SENDWELL_METRICS_TOKEN>.\n",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
