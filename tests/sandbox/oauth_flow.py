"""An OAuth client and a user against the sandbox: consent, then the token endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from sendwell.sandbox.state import RegisteredClient
from tests.sandbox_support import Sandbox, consent_flow

VERIFIER = "v" * 64
GMAIL = "https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/gmail.metadata"
GOOGLE_SCOPE = f"{GMAIL} openid email"
MICROSOFT_SCOPE = "offline_access Mail.Send Mail.ReadBasic User.Read openid"


def paths(client: RegisteredClient) -> tuple[str, str]:
    """The authorization and token paths of the client's host."""
    if client.provider == "google":
        return "/google/o/oauth2/v2/auth", "/google/token"
    return "/microsoft/common/oauth2/v2.0/authorize", "/microsoft/common/oauth2/v2.0/token"


def authorize_url(
    sandbox: Sandbox, client: RegisteredClient, email: str, scope: str, **overrides: str
) -> str:
    query = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "response_type": "code",
        "scope": scope,
        "state": "st",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
        "login_hint": email,
        **overrides,
    }
    return f"{sandbox.url}{paths(client)[0]}?{urlencode(query)}"


def token_call(sandbox: Sandbox, client: RegisteredClient, **form: str) -> httpx.Response:
    """POST to the client's token endpoint with its id and secret in the form."""
    data = {"client_id": client.client_id, "client_secret": client.secret, **form}
    return httpx.post(f"{sandbox.url}{paths(client)[1]}", data=data, timeout=10)


def link(sandbox: Sandbox, client: RegisteredClient, email: str, scope: str) -> dict[str, Any]:
    """Consent like a user and exchange the code; the token response's body."""
    params = consent_flow(authorize_url(sandbox, client, email, scope), email)
    response = token_call(
        sandbox,
        client,
        grant_type="authorization_code",
        code=params["code"],
        redirect_uri=client.redirect_uris[0],
        code_verifier=VERIFIER,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refresh(sandbox: Sandbox, client: RegisteredClient, refresh_token: str) -> httpx.Response:
    return token_call(sandbox, client, grant_type="refresh_token", refresh_token=refresh_token)


def advance(sandbox: Sandbox, days: float) -> None:
    sandbox.admin("clock", {"advance_seconds": days * 86400})
