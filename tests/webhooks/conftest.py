"""A real HTTP receiver on loopback, endpoints registered through the API, and a deliverer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.db import session_scope
from sendwell.kit.tokenbox import TokenBox
from sendwell.models import User
from sendwell.webhooks.delivery import DeliveryPolicy, WebhookDeliverer
from tests.conftest import (
    LOOPBACK,
    LOOPBACK_ALLOWED,
    Database,
    create_first_account,
    make_settings,
)
from tests.dispatch.conftest import SENDER, World
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

FAST = DeliveryPolicy(
    timeout_seconds=5,
    first_retry=timedelta(milliseconds=1),
    longest_retry=timedelta(milliseconds=1),
    outbound=LOOPBACK,
)


@pytest.fixture
def world(database: Database, engine: Engine, sandbox: Sandbox) -> Iterator[World]:
    """The dispatch tests' world, with webhooks allowed to loopback receivers."""
    settings = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        dns_timeout_seconds=0.3,
        provider_timeout_seconds=5,
        outbound_allow=LOOPBACK_ALLOWED,
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        create_first_account(client)
        link(client, SENDER)
        app: Any = client.app
        yield World(client, app.state.session_factory, app.state.services, sandbox, settings)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Answers each request with the next scripted reply (status, headers), else 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self.script.extend([(status, {})] * count)

    def redirect_next(self, location: str) -> None:
        with self.lock:
            self.script.append((302, {"Location": location}))

    def answer(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else (200, {})

    def accepted(self) -> list[Received]:
        """Requests that were answered 2xx, in arrival order."""
        return [r for r in self.received if r.headers.get("x-answered") == "2xx"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            request = Received(self.path, headers, body)
            status, extra = holder["receiver"].answer(request)
            request.headers["x-answered"] = "2xx" if 200 <= status < 300 else str(status)
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["receiver"]
    server.shutdown()
    server.server_close()


def admin_token(world: World) -> str:
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        _token, plaintext = accounts.create_api_token(db, user, "webhooks test")
    return plaintext


def register(
    world: World, url: str, events: list[str], *, secret: str = "s" * 32
) -> dict[str, Any]:
    """Register an endpoint through the API, as an admin would."""
    response = world.client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": events, "secret": secret},
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliverer(world: World, policy: DeliveryPolicy = FAST, **kwargs: Any) -> WebhookDeliverer:
    return WebhookDeliverer(
        world.factory, TokenBox(world.settings.token_key_list), policy, **kwargs
    )
