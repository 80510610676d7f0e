"""Responses the real services send when things go wrong, including a cut connection."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send


class CutResponse(Response):
    """Announces a body, sends part of it, and stops: the client sees the connection cut."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content=content, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.body) + 512).encode()),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": False,
            }
        )


def google_api_error(
    status: int,
    message: str,
    reason: str,
    status_name: str,
    *,
    domain: str = "global",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error body every Google API (Gmail included) returns."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
        "status": status_name,
    }
    error.update(extra or {})
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def graph_error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error body Microsoft Graph returns."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-01-01T00:00:00",
                "request-id": "sandbox",
                "client-request-id": "sandbox",
            },
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)
