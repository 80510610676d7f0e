"""`sendwell worker --metrics-port`: the same /metrics, token-protected, on a small HTTP server.

Workers serve no web pages, but their provider counters are their own, so each worker can
expose its metrics to the scraper on a port of its own.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def token_protected(app: WSGIApp, token: str) -> WSGIApp:
    """Only GET /metrics with `Authorization: Bearer <token>` reaches the exporter."""

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found.\n"]
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), token):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"Send the metrics token: Authorization: Bearer <SENDWELL_METRICS_TOKEN>.\n"]
        return app(environ, start_response)

    return guarded


def serve_metrics(
    registry: CollectorRegistry, *, token: str, host: str, port: int
) -> ThreadingWSGIServer:
    """Start serving in a daemon thread; call `shutdown()` on the result to stop."""
    server = make_server(
        host,
        port,
        token_protected(make_wsgi_app(registry), token),
        server_class=ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
