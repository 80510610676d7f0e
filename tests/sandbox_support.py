"""The sandbox on its own port over real HTTP, and a driver for its sign-in and consent pages."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import uvicorn

from sendwell.sandbox.app import create_standalone_app
from sendwell.sandbox.state import SandboxState

FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
SCOPE_BOX = re.compile(r'name="scope" value="([^"]+)"')
RETURN_LINK = re.compile(r'<a href="([^"]+)">Return to the application')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sandbox:
    """A running sandbox: its base URL, its state, and its admin endpoints."""

    url: str
    state: SandboxState

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.url}/admin/{path}", json=payload or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def sent(self, mailbox: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/admin/messages", params={"mailbox": mailbox}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


@contextmanager
def running_sandbox() -> Iterator[Sandbox]:
    state = SandboxState()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_standalone_app(state),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.02)
    try:
        yield Sandbox(f"http://127.0.0.1:{port}/sandbox", state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def consent_flow(
    authorize_url: str,
    email: str,
    *,
    password: str = "any password",
    untick: Iterable[str] = (),
    action: str = "allow",
) -> dict[str, str]:
    """Sign in and answer the consent page like a user; return the callback's parameters."""
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        signed_in = browser.post(
            _action(authorize_url, page.text), data={"email": email, "password": password}
        )
        if "Need admin approval" in signed_in.text:
            link = RETURN_LINK.search(signed_in.text)
            assert link, signed_in.text
            return _query(link.group(1).replace("&amp;", "&"))
        assert signed_in.status_code == 200, signed_in.text
        unticked = set(untick)
        scopes = [s for s in SCOPE_BOX.findall(signed_in.text) if s not in unticked]
        answer = browser.post(
            _action(authorize_url, signed_in.text), data={"action": action, "scope": scopes}
        )
        assert answer.status_code == 302, answer.text
        return _query(answer.headers["location"])


def _action(base: str, html: str) -> str:
    match = FORM_ACTION.search(html)
    assert match, html
    return urljoin(base, str(match.group(1)))


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
