"""A workspace with its admin signed in, the sandbox behind it, and people to invite."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.models import User
from tests.conftest import (
    STRONG_PASSWORD,
    Database,
    create_first_account,
    csrf_from,
    make_settings,
    post_form,
)
from tests.sandbox_support import Sandbox

INVITE_LINK = re.compile(r'value="http://testserver(/invitations/[^"]+)"')


class Inbox:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def settings(database: Database, sandbox: Sandbox) -> Settings:
    return make_settings(
        database.url, sandbox=True, sandbox_url=sandbox.url, dns_timeout_seconds=0.3
    )


@pytest.fixture
def admin(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """Ada, the workspace's first account (its admin), signed in."""
    with TestClient(create_app(settings, engine=engine)) as client:
        create_first_account(client)
        yield client


def text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def invite(admin: TestClient, email: str, role: str = "member") -> str:
    """Team → Invite; returns the link the page shows (the server has no notification email)."""
    response = post_form(admin, "/team", "/team/invitations", {"email": email, "role": role})
    assert response.status_code == 201, response.text
    found = INVITE_LINK.search(response.text)
    assert found, response.text
    return found.group(1)


def accept(app: Any, link: str, name: str, password: str = STRONG_PASSWORD) -> TestClient:
    """A new browser opens the link and chooses a name and password; returns it signed in."""
    browser = TestClient(app)
    response = post_form(browser, link, link, {"name": name, "password": password})
    assert response.status_code == 200, response.text
    assert f"Welcome to Sendwell, {name}." in text(response)
    return browser


def join(admin: TestClient, email: str, name: str, role: str = "member") -> TestClient:
    return accept(admin.app, invite(admin, email, role), name)


def sign_in(app: Any, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
    browser = TestClient(app)
    response: httpx.Response = post_form(
        browser,
        "/sign-in",
        "/sign-in",
        {"email": email, "password": password},
        follow_redirects=False,
    )
    return response


def user_id(db: Session, email: str) -> int:
    db.expire_all()
    return db.scalars(select(User.id).where(User.email == email)).one()


def form_token(client: TestClient, page: str = "/account") -> str:
    return csrf_from(client.get(page).text)
