"""An app wired to the sandbox over real HTTP, a signed-in user, and a way to link accounts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.mailboxes.provider_services import ProviderServices
from tests.conftest import Database, create_first_account, csrf_from, make_settings
from tests.sandbox_support import Sandbox, consent_flow


@pytest.fixture
def settings(database: Database, sandbox: Sandbox) -> Settings:
    return make_settings(
        database.url, sandbox=True, sandbox_url=sandbox.url, dns_timeout_seconds=0.3
    )


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as test_client:
        create_first_account(test_client)
        yield test_client


@pytest.fixture
def services(client: TestClient) -> ProviderServices:
    services: ProviderServices = client.app.state.services  # type: ignore[attr-defined]
    return services


def start_link(client: TestClient, email: str, **extra: str) -> httpx.Response:
    token = csrf_from(client.get("/messaging/settings").text)
    response: httpx.Response = client.post(
        "/mailboxes/link",
        data={"csrftoken": token, "own": "on", "email": email, **extra},
        follow_redirects=False,
    )
    return response


def finish_at_provider(
    client: TestClient, response: httpx.Response, email: str, **flow: Any
) -> httpx.Response:
    """Follow the redirect to the (real HTTP) sandbox, act there, come back to the callback."""
    assert response.status_code == 303, response.text
    params = consent_flow(response.headers["location"], email, **flow)
    path = "/mailboxes/callback/" + ("google" if "gmail.test" in email else "microsoft")
    callback: httpx.Response = client.get(path, params=params, follow_redirects=False)
    return callback


def link(client: TestClient, email: str, **flow: Any) -> httpx.Response:
    return finish_at_provider(client, start_link(client, email), email, **flow)
