"""Microsoft's own MSAL library completes its flows against the sandbox (served over HTTPS)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msal
import pytest
import requests

from sendwell.sandbox.state import RegisteredClient
from tests.sandbox.conftest import trusting
from tests.sandbox_support import Sandbox, consent_flow

CLIENT = RegisteredClient(
    provider="microsoft",
    client_id="msal-app",
    secret="msal-secret",
    redirect_uris=("http://127.0.0.1:9/msal/callback",),
)
USER = "grace@contoso.outlook.test"
SCOPES = ["Mail.Send", "Mail.ReadBasic", "User.Read"]


@pytest.fixture(autouse=True)
def msal_client(tls_sandbox: Sandbox) -> None:
    tls_sandbox.state.register(CLIENT)


def msal_app(
    sandbox: Sandbox, session: requests.Session, secret: str
) -> msal.ConfidentialClientApplication:
    # MSAL accepts only https authorities; validate_authority and instance discovery would
    # ask the real Microsoft cloud.
    return msal.ConfidentialClientApplication(
        CLIENT.client_id,
        client_credential=secret,
        authority=f"{sandbox.url}/microsoft/common",
        http_client=session,
        validate_authority=False,
        instance_discovery=False,
    )


@pytest.fixture
def app(tls_sandbox: Sandbox) -> Iterator[msal.ConfidentialClientApplication]:
    with trusting(tls_sandbox) as session:
        yield msal_app(tls_sandbox, session, CLIENT.secret)


# Sendwell asks for response_mode=query (its callback is a GET); MSAL prefers form_post.
@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_completes_the_code_flow_with_pkce_and_refreshes(
    tls_sandbox: Sandbox, app: msal.ConfidentialClientApplication
) -> None:
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=CLIENT.redirect_uris[0], login_hint=USER
    )
    assert "code_challenge=" in flow["auth_uri"]
    answer = consent_flow(flow["auth_uri"], USER, verify=tls_sandbox.verify)
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result
    assert set(SCOPES) <= set(result["scope"].split())
    me = httpx.get(
        f"{tls_sandbox.url}/microsoft/graph/v1.0/me",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=tls_sandbox.verify,
    )
    assert me.json()["mail"] == USER

    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=SCOPES)
    assert "access_token" in refreshed, refreshed
    assert refreshed["refresh_token"] != result["refresh_token"]


def test_msal_reports_the_sandboxs_error_for_a_wrong_secret(tls_sandbox: Sandbox) -> None:
    with trusting(tls_sandbox) as session:
        wrong = msal_app(tls_sandbox, session, "not-the-secret")
        result = wrong.acquire_token_by_refresh_token("0.AXnothing", scopes=SCOPES)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
