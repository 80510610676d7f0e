"""Registered OAuth clients: Sendwell's own, and how a token request proves which one it is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from fastapi.security import HTTPBasic, HTTPBasicCredentials

from sendwell.providers.registry import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from sendwell.sandbox.state import RegisteredClient

# Both hosts accept client_secret_basic as well as client_secret_post (RFC 6749 section 2.3.1).
basic_auth = HTTPBasic(auto_error=False)
SecretCheck = Literal["ok", "unknown", "missing", "wrong", "expired"]


def sendwell_clients(
    redirect_uri: Callable[[str], str],
    *,
    google_publishing_status: Literal["testing", "production"] = "production",
    microsoft_secret_expires_at: datetime | None = None,
) -> list[RegisteredClient]:
    """The clients a Sendwell server uses in sandbox mode, with its real callback URLs.

    They follow the server's settings (the Google app's publishing status, the Microsoft
    secret's expiry), so the demo shows what those settings warn about.
    """
    return [
        RegisteredClient(
            provider="google",
            client_id=SANDBOX_CLIENT_ID,
            secret=SANDBOX_CLIENT_SECRET,
            redirect_uris=(redirect_uri("google"),),
            publishing_status=google_publishing_status,
        ),
        RegisteredClient(
            provider="microsoft",
            client_id=SANDBOX_CLIENT_ID,
            secret=SANDBOX_CLIENT_SECRET,
            redirect_uris=(redirect_uri("microsoft"),),
            secret_expires_at=microsoft_secret_expires_at,
        ),
    ]


def presented(
    basic: HTTPBasicCredentials | None, client_id: str, client_secret: str
) -> tuple[str, str]:
    """The client id and secret of a token request, from the Basic header or the form."""
    if basic is not None:
        return basic.username, basic.password
    return client_id, client_secret


def check_secret(client: RegisteredClient | None, secret: str, now: datetime) -> SecretCheck:
    """Whether a token request authenticates as a registered client."""
    if client is None:
        return "unknown"
    if not secret:
        return "missing"
    if secret != client.secret:
        return "wrong"
    if client.secret_expires_at is not None and client.secret_expires_at <= now:
        return "expired"
    return "ok"
