"""The standalone sandbox with bench-only additions: it counts send and token answers by
outcome, and inbox reads; grants Sendwell's client access to many Gmail mailboxes at once;
and lists every sent message's arrival time.

Run as its own process: `uvicorn --factory bench.sandbox_server:create_app`. The counts let
the detection benchmark see failed send attempts from the provider's side; the grants and
the arrival list serve the paced benchmark's thousands of mailboxes, which would take many
minutes to link one consent page at a time.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.sandbox_support import is_inbox_read

from sendwell.providers.google import REQUIRED_SCOPES as GMAIL_SCOPES
from sendwell.providers.registry import SANDBOX_CLIENT_ID
from sendwell.sandbox.app import create_standalone_app
from sendwell.sandbox.clients import sendwell_clients
from sendwell.sandbox.signin import GOOGLE_SIGN_IN_SCOPES
from sendwell.sandbox.state import ACCESS_TOKEN_SECONDS, Grant, SandboxState

SEND_PATHS = ("/messages/send", "/sendMail")
TOKEN_PATHS = ("/token",)


def kind_of(method: str, path: str, query: bytes = b"") -> str | None:
    if path.endswith(SEND_PATHS):
        return "send"
    if path.endswith(TOKEN_PATHS):
        return "token"
    if is_inbox_read(method, path, query.decode("latin-1")):
        return "inbox"
    return None


class Counts:
    def __init__(self, app: ASGIApp, counter: Counter[str]) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = (
            kind_of(scope["method"], scope["path"], scope.get("query_string", b""))
            if scope["type"] == "http"
            else None
        )
        if kind is None:
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome = "ok" if message["status"] < 300 else "failed"
                self.counter[f"{kind}_{outcome}"] += 1
            await send(message)

        await self.app(scope, receive, counted)


class Addresses(BaseModel):
    addresses: list[str]


def create_app() -> FastAPI:
    counter: Counter[str] = Counter()
    # The Sendwell server under test is at SENDWELL_BASE_URL: its callbacks are registered.
    base_url = os.environ["SENDWELL_BASE_URL"].rstrip("/")
    clients = sendwell_clients(lambda provider: f"{base_url}/mailboxes/callback/{provider}")
    state = SandboxState(clients=clients)
    app = create_standalone_app(state)

    @app.get("/bench/counts")
    def counts() -> dict[str, Any]:
        return dict(counter)

    @app.post("/bench/grants")
    def grants(body: Addresses) -> list[dict[str, Any]]:
        """What the token endpoint answers after each Gmail mailbox's consent to Sendwell's
        client (sign-in, send and metadata scopes), with the account's identity."""
        answered = []
        for address in body.addresses:
            mailbox = state.mailbox(address)
            scopes = GOOGLE_SIGN_IN_SCOPES | GMAIL_SCOPES
            grant = Grant(address=mailbox.address, client_id=SANDBOX_CLIENT_ID, scopes=scopes)
            access, refresh = state.issue_tokens(grant, with_refresh=True)
            answered.append(
                {
                    "email": mailbox.address,
                    "subject": mailbox.subject,
                    "name": mailbox.display_name,
                    "access_token": access.value,
                    "refresh_token": refresh.value if refresh else None,
                    "expires_in": ACCESS_TOKEN_SECONDS,
                    "scopes": sorted(scopes),
                }
            )
        return answered

    @app.get("/bench/sent")
    def sent() -> dict[str, list[float]]:
        """Each mailbox's sent messages' arrival times (Unix seconds), oldest first."""
        with state.lock:
            return {
                address: [m.at.timestamp() for m in mailbox.messages if m.folder == "sent"]
                for address, mailbox in state.mailboxes.items()
            }

    app.add_middleware(Counts, counter=counter)
    return app
