"""The standalone sandbox with one addition: it counts send and token answers by outcome.

Run as its own process: `uvicorn --factory bench.sandbox_server:create_app`. The counts let
the detection benchmark see failed send attempts from the provider's side.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendwell.sandbox.app import create_standalone_app
from sendwell.sandbox.clients import sendwell_clients
from sendwell.sandbox.state import SandboxState

SEND_PATHS = ("/messages/send", "/sendMail")
TOKEN_PATHS = ("/token",)


def kind_of(path: str) -> str | None:
    if path.endswith(SEND_PATHS):
        return "send"
    if path.endswith(TOKEN_PATHS):
        return "token"
    return None


class Counts:
    def __init__(self, app: ASGIApp, counter: Counter[str]) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = kind_of(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome = "ok" if message["status"] < 300 else "failed"
                self.counter[f"{kind}_{outcome}"] += 1
            await send(message)

        await self.app(scope, receive, counted)


def create_app() -> FastAPI:
    counter: Counter[str] = Counter()
    # The Sendwell server under test is at SENDWELL_BASE_URL: its callbacks are registered.
    base_url = os.environ["SENDWELL_BASE_URL"].rstrip("/")
    clients = sendwell_clients(lambda provider: f"{base_url}/mailboxes/callback/{provider}")
    app = create_standalone_app(SandboxState(clients=clients))

    @app.get("/bench/counts")
    def counts() -> dict[str, Any]:
        return dict(counter)

    app.add_middleware(Counts, counter=counter)
    return app
