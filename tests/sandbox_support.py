"""The sandbox on its own port over real HTTP, and a driver for its sign-in and consent pages."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from sendwell.providers.registry import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from sendwell.sandbox.app import create_standalone_app
from sendwell.sandbox.state import RegisteredClient, SandboxState
from tests.imap_smtp.certificates import TestCertificates
from tests.sandbox.gmail_schema import GmailSchemaCheck

FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
SCOPE_BOX = re.compile(r'name="scope" value="([^"]+)"')
RETURN_LINK = re.compile(r'<a href="([^"]+)">Return to the application')


# The servers tests build (base URL http://testserver, or the default 127.0.0.1:8000).
TEST_BASE_URLS = ("http://testserver", "http://127.0.0.1:8000")
# The provider tests' own clients, and the sandbox contract tests' client "c".
TEST_GOOGLE_CLIENT = ("sendwell-test", "secret")
MICROSOFT_TEST_REDIRECT = "http://127.0.0.1:9/oauth/microsoft/callback"
CONTRACT_CLIENT = RegisteredClient(
    provider="google",
    client_id="c",
    secret="contract-secret",
    redirect_uris=("http://app.test/cb",),
)


def known_clients() -> list[RegisteredClient]:
    """The OAuth clients the test suite's Sendwell servers and provider tests use."""
    sendwell = [
        RegisteredClient(
            provider=provider,
            client_id=SANDBOX_CLIENT_ID,
            secret=SANDBOX_CLIENT_SECRET,
            redirect_uris=(
                *(f"{base}/mailboxes/callback/{provider}" for base in TEST_BASE_URLS),
                *((MICROSOFT_TEST_REDIRECT,) if provider == "microsoft" else ()),
            ),
        )
        for provider in ("google", "microsoft")
    ]
    google_test = RegisteredClient(
        provider="google",
        client_id=TEST_GOOGLE_CLIENT[0],
        secret=TEST_GOOGLE_CLIENT[1],
        redirect_uris=(f"{TEST_BASE_URLS[1]}/mailboxes/callback/google",),
    )
    contract_microsoft = replace(CONTRACT_CLIENT, provider="microsoft")
    return [*sendwell, google_test, CONTRACT_CLIENT, contract_microsoft]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_inbox_read(method: str, path: str, query: str) -> bool:
    """Whether a request to the sandbox reads a Gmail inbox (users.history.list of the INBOX
    label, as our client reads one)."""
    return (
        method == "GET" and path.endswith("/history") and ("labelId", "INBOX") in parse_qsl(query)
    )


# The newest requests the test sandbox keeps (it serves a whole test session).
LOGGED = 10_000


@dataclass
class Sandbox:
    """A running sandbox: its base URL, its state, and its admin endpoints."""

    url: str
    state: SandboxState
    # What to trust when the sandbox serves HTTPS: its CA, as httpx wants it and as a file.
    verify: ssl.SSLContext | bool = True
    ca_file: str = ""
    # How Gmail bodies it saw depart from Google's discovery document (see gmail_schema).
    schema_problems: list[str] = field(default_factory=list)
    # Every request it was asked, as the host would see it: (time.monotonic(), method, path,
    # query string).
    requests: deque[tuple[float, str, str, str]] = field(
        default_factory=lambda: deque(maxlen=LOGGED)
    )

    def inbox_reads(self, since: float = 0.0) -> list[float]:
        """When Gmail inboxes were read (users.history.list of the INBOX label) since
        `since` (time.monotonic())."""
        return [
            at
            for at, method, path, query in list(self.requests)
            if at >= since and is_inbox_read(method, path, query)
        ]

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            f"{self.url}/admin/{path}", json=payload or {}, timeout=10, verify=self.verify
        )
        response.raise_for_status()
        return response.json()

    def sent(self, mailbox: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/admin/messages",
            params={"mailbox": mailbox},
            timeout=10,
            verify=self.verify,
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


class RequestLog:
    """ASGI middleware for the test sandbox: notes each request as it arrives."""

    def __init__(self, app: ASGIApp, log: deque[tuple[float, str, str, str]]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            self.log.append((time.monotonic(), scope["method"], scope["path"], query))
        await self.app(scope, receive, send)


@contextmanager
def running_sandbox(
    clients: Iterable[RegisteredClient] | None = None, tls: TestCertificates | None = None
) -> Iterator[Sandbox]:
    """The sandbox on a free port (HTTPS with `tls`), knowing the test clients by default."""
    state = SandboxState(clients=known_clients() if clients is None else clients)
    schema_problems: list[str] = []
    requests: deque[tuple[float, str, str, str]] = deque(maxlen=LOGGED)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            RequestLog(GmailSchemaCheck(create_standalone_app(state), schema_problems), requests),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
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
        scheme = "https" if tls else "http"
        verify = ssl.create_default_context(cafile=str(tls.ca_file)) if tls else True
        ca_file = str(tls.ca_file) if tls else ""
        yield Sandbox(
            f"{scheme}://127.0.0.1:{port}/sandbox",
            state,
            verify,
            ca_file,
            schema_problems,
            requests,
        )
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
    verify: ssl.SSLContext | bool = True,
) -> dict[str, str]:
    """Sign in and answer the consent page like a user; return the callback's parameters."""
    with httpx.Client(timeout=10, follow_redirects=False, verify=verify) as browser:
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
