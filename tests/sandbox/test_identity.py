"""The sandbox's identity side: registered clients, consent, token lifetimes and revocation."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.sandbox.state import RegisteredClient
from tests.conftest import Database, make_settings
from tests.sandbox.oauth_flow import (
    GMAIL,
    GOOGLE_SCOPE,
    MICROSOFT_SCOPE,
    advance,
    authorize_url,
    link,
    refresh,
    token_call,
)
from tests.sandbox_support import CONTRACT_CLIENT, Sandbox, consent_flow

GOOGLE = CONTRACT_CLIENT
MICROSOFT = replace(CONTRACT_CLIENT, provider="microsoft")
ADA = "ada@gmail.test"
GRACE = "grace@contoso.outlook.test"


def register(sandbox: Sandbox, client: RegisteredClient, **extra: object) -> RegisteredClient:
    sandbox.admin(
        "clients",
        {
            "provider": client.provider,
            "client_id": client.client_id,
            "client_secret": client.secret,
            "redirect_uris": list(client.redirect_uris),
            "publishing_status": client.publishing_status,
            "project": client.project,
            **extra,
        },
    )
    return client


def aadsts(response: httpx.Response) -> str:
    match = re.match(r"AADSTS\d+", response.json()["error_description"])
    assert match, response.text
    return match.group(0)


# Registered clients and redirect URIs


@pytest.mark.parametrize(
    ("client", "status", "words"),
    [
        (GOOGLE, 401, "Error 401: invalid_client"),
        (MICROSOFT, 400, "AADSTS700016: Application with identifier 'stranger'"),
    ],
)
def test_an_unknown_client_gets_the_hosts_error_page(
    sandbox: Sandbox, client: RegisteredClient, status: int, words: str
) -> None:
    page = httpx.get(authorize_url(sandbox, replace(client, client_id="stranger"), ADA, "openid"))
    assert page.status_code == status
    assert words in html.unescape(page.text)
    assert "Sign in</button>" not in page.text


@pytest.mark.parametrize(
    ("client", "words"),
    [
        (GOOGLE, "Error 400: redirect_uri_mismatch"),
        (MICROSOFT, "AADSTS50011: The redirect URI 'http://app.test/other' specified"),
    ],
)
def test_an_unregistered_redirect_uri_is_refused_before_sign_in(
    sandbox: Sandbox, client: RegisteredClient, words: str
) -> None:
    url = authorize_url(sandbox, client, ADA, "openid", redirect_uri="http://app.test/other")
    page = httpx.get(url)
    assert page.status_code == 400
    assert words in html.unescape(page.text)


def test_google_refuses_a_wrong_or_missing_secret_with_invalid_client(sandbox: Sandbox) -> None:
    tokens = link(sandbox, GOOGLE, ADA, GMAIL)
    for secret in ("wrong", ""):
        answer = refresh(sandbox, replace(GOOGLE, secret=secret), tokens["refresh_token"])
        assert answer.status_code == 401
        assert answer.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    stranger = refresh(sandbox, replace(GOOGLE, client_id="stranger"), tokens["refresh_token"])
    assert stranger.status_code == 401
    assert stranger.json()["error_description"] == "The OAuth client was not found."
    assert refresh(sandbox, GOOGLE, tokens["refresh_token"]).status_code == 200


def test_the_secret_may_come_in_a_basic_header(sandbox: Sandbox) -> None:
    tokens = link(sandbox, GOOGLE, ADA, GMAIL)
    answer = httpx.post(
        f"{sandbox.url}/google/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(GOOGLE.client_id, GOOGLE.secret),
    )
    assert answer.status_code == 200, answer.text


def test_microsoft_refuses_a_wrong_secret_and_an_expired_one(sandbox: Sandbox) -> None:
    tokens = link(sandbox, MICROSOFT, GRACE, MICROSOFT_SCOPE)
    wrong = refresh(sandbox, replace(MICROSOFT, secret="wrong"), tokens["refresh_token"])
    assert (wrong.status_code, wrong.json()["error"], aadsts(wrong)) == (
        401,
        "invalid_client",
        "AADSTS7000215",
    )
    register(sandbox, MICROSOFT, secret_expires_in_seconds=3600)
    assert refresh(sandbox, MICROSOFT, tokens["refresh_token"]).status_code == 200
    advance(sandbox, 1 / 24 + 0.001)
    for _ in range(2):  # every token request of the client, not just one
        expired = refresh(sandbox, MICROSOFT, tokens["refresh_token"])
        assert (expired.status_code, aadsts(expired)) == (401, "AADSTS7000222")
    assert expired.json()["error_codes"] == [7000222]


def test_sendwells_own_callbacks_are_registered_where_it_mounts_the_sandbox(
    database: Database, engine: Engine
) -> None:
    settings = make_settings(
        database.url, sandbox=True, sandbox_demo=True, base_url="https://mail.example.com"
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        for provider, path in (
            ("google", "/sandbox/google/o/oauth2/v2/auth"),
            ("microsoft", "/sandbox/microsoft/common/oauth2/v2.0/authorize"),
        ):
            query = {
                "client_id": "sendwell-sandbox",
                "response_type": "code",
                "scope": "openid",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            }
            ours = f"https://mail.example.com/mailboxes/callback/{provider}"
            assert client.get(path, params={**query, "redirect_uri": ours}).status_code == 200
            other = client.get(path, params={**query, "redirect_uri": "https://evil.test/cb"})
            assert other.status_code == 400


# Consent


def test_google_shows_the_identity_block_without_a_checkbox_and_always_grants_it(
    sandbox: Sandbox,
) -> None:
    with httpx.Client() as browser:
        page = browser.get(authorize_url(sandbox, GOOGLE, ADA, GOOGLE_SCOPE))
        action = re.search(r'action="([^"]+)"', page.text)
        assert action
        consent = browser.post(
            str(page.url.join(action.group(1))), data={"email": ADA, "password": "pw"}
        )
    boxes = re.findall(r'type="checkbox"[^>]*value="([^"]+)"', consent.text)
    assert boxes == GMAIL.split()
    identity = consent.text.split('class="identity"')[1].split("</section>")[0]
    assert "Associate you with your personal info on Google" in identity
    assert "See your primary Google Account email address" in identity
    tokens = link(sandbox, GOOGLE, ADA, GOOGLE_SCOPE)
    assert set(tokens["scope"].split()) == {*GMAIL.split(), "openid", "email"}


def test_microsoft_consent_lists_microsofts_own_texts(sandbox: Sandbox) -> None:
    with httpx.Client() as browser:
        page = browser.get(authorize_url(sandbox, MICROSOFT, GRACE, MICROSOFT_SCOPE))
        action = re.search(r'action="([^"]+)"', page.text)
        assert action
        consent = browser.post(
            str(page.url.join(action.group(1))), data={"email": GRACE, "password": "pw"}
        )
    labels = re.findall(r'<label for="perm-\d+">([^<]+)</label>', html.unescape(consent.text))
    assert labels == [
        "Maintain access to data you have given it access to",
        "Send mail as you",
        "Read user basic mail",
        "Sign you in and read your profile",
        "Sign in as you",
    ]
    assert "Google" not in consent.text.split("<h1>")[1]


# Refresh-token lifetimes on the sandbox clock


def test_a_testing_client_s_refresh_token_lasts_seven_days(sandbox: Sandbox) -> None:
    testing = register(sandbox, replace(GOOGLE, publishing_status="testing"))
    tokens = link(sandbox, testing, ADA, GOOGLE_SCOPE)
    sign_in_only = link(sandbox, testing, ADA, "openid email")
    advance(sandbox, 6.9)
    assert refresh(sandbox, testing, tokens["refresh_token"]).status_code == 200
    advance(sandbox, 0.2)
    expired = refresh(sandbox, testing, tokens["refresh_token"])
    assert (expired.status_code, expired.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    # Only sign-in scopes: the Testing expiry does not apply.
    assert refresh(sandbox, testing, sign_in_only["refresh_token"]).status_code == 200


def test_a_google_refresh_token_unused_for_six_months_stops_working(sandbox: Sandbox) -> None:
    used = link(sandbox, GOOGLE, ADA, GMAIL)["refresh_token"]
    idle = link(sandbox, GOOGLE, "bob@gmail.test", GMAIL)["refresh_token"]
    for _ in range(2):
        advance(sandbox, 100)
        assert refresh(sandbox, GOOGLE, used).status_code == 200
    assert refresh(sandbox, GOOGLE, idle).json()["error"] == "invalid_grant"


def test_a_password_change_ends_gmail_refresh_tokens_only(sandbox: Sandbox) -> None:
    gmail = link(sandbox, GOOGLE, ADA, GOOGLE_SCOPE)["refresh_token"]
    sign_in_only = link(sandbox, GOOGLE, ADA, "openid email")["refresh_token"]
    assert sandbox.admin("password-change", {"mailbox": ADA}) == {"ended": 1}
    assert refresh(sandbox, GOOGLE, gmail).json()["error"] == "invalid_grant"
    assert refresh(sandbox, GOOGLE, sign_in_only).status_code == 200


def test_the_101st_google_refresh_token_silently_ends_the_oldest(sandbox: Sandbox) -> None:
    first = link(sandbox, GOOGLE, ADA, GMAIL)["refresh_token"]
    # The other 99 live tokens, made directly: a hundred consents over HTTP add nothing.
    grant = sandbox.state.tokens[first].grant
    for _ in range(99):
        sandbox.state.issue_tokens(replace(grant), with_refresh=True)
    assert refresh(sandbox, GOOGLE, first).status_code == 200
    newest = link(sandbox, GOOGLE, ADA, GMAIL)["refresh_token"]
    assert refresh(sandbox, GOOGLE, first).json()["error"] == "invalid_grant"
    assert refresh(sandbox, GOOGLE, newest).status_code == 200


def test_a_microsoft_refresh_token_expires_after_90_days_unused(sandbox: Sandbox) -> None:
    first = link(sandbox, MICROSOFT, GRACE, MICROSOFT_SCOPE)["refresh_token"]
    advance(sandbox, 80)
    rotated = refresh(sandbox, MICROSOFT, first).json()["refresh_token"]
    advance(sandbox, 80)
    newest = refresh(sandbox, MICROSOFT, rotated).json()["refresh_token"]
    advance(sandbox, 11)  # the first token was last used 91 days ago
    assert refresh(sandbox, MICROSOFT, newest).status_code == 200
    stale = refresh(sandbox, MICROSOFT, first)
    assert (stale.status_code, stale.json()["error"], aadsts(stale)) == (
        400,
        "invalid_grant",
        "AADSTS700082",
    )
    assert "was inactive for 90.00:00:00" in stale.json()["error_description"]


def test_a_microsoft_password_change_leaves_confidential_client_tokens(sandbox: Sandbox) -> None:
    tokens = link(sandbox, MICROSOFT, GRACE, MICROSOFT_SCOPE)
    assert sandbox.admin("password-change", {"mailbox": GRACE}) == {"ended": 0}
    assert refresh(sandbox, MICROSOFT, tokens["refresh_token"]).status_code == 200


def test_reset_brings_back_the_configured_clients_and_the_real_time(sandbox: Sandbox) -> None:
    register(sandbox, GOOGLE, client_secret="rotated")
    advance(sandbox, 30)
    sandbox.admin("reset")
    assert sandbox.state.clock.offset.total_seconds() == 0
    assert link(sandbox, GOOGLE, ADA, GMAIL)["access_token"]


def test_admin_refuses_a_bad_client_or_clock(sandbox: Sandbox) -> None:
    bad = httpx.post(
        f"{sandbox.url}/admin/clients",
        json={"provider": "yahoo", "client_id": "x", "client_secret": "s", "redirect_uris": []},
    )
    assert bad.status_code == 422
    backwards = httpx.post(f"{sandbox.url}/admin/clock", json={"advance_seconds": -5})
    assert backwards.status_code == 422


# Revocation


def test_google_revoke_ends_every_grant_of_the_user_to_the_project(sandbox: Sandbox) -> None:
    other = register(
        sandbox,
        RegisteredClient(
            provider="google", client_id="other-app", secret="s2", redirect_uris=("http://o/cb",)
        ),
    )
    linked = link(sandbox, GOOGLE, ADA, GMAIL)
    abandoned = link(sandbox, GOOGLE, ADA, GMAIL)
    elsewhere = link(sandbox, other, ADA, GMAIL)
    revoked = httpx.post(f"{sandbox.url}/google/revoke", data={"token": abandoned["access_token"]})
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert refresh(sandbox, GOOGLE, linked["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(sandbox, other, elsewhere["refresh_token"]).status_code == 200
    again = httpx.post(f"{sandbox.url}/google/revoke", data={"token": abandoned["refresh_token"]})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")


def test_google_revoke_reaches_other_clients_of_the_same_project(sandbox: Sandbox) -> None:
    register(sandbox, replace(GOOGLE, project="shared"))
    sibling = register(
        sandbox,
        RegisteredClient(
            provider="google",
            client_id="sibling",
            secret="s3",
            redirect_uris=("http://s/cb",),
            project="shared",
        ),
    )
    ours = link(sandbox, GOOGLE, ADA, GMAIL)
    theirs = link(sandbox, sibling, ADA, GMAIL)
    httpx.post(f"{sandbox.url}/google/revoke", data={"token": ours["refresh_token"]})
    assert refresh(sandbox, sibling, theirs["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_code_is_only_exchanged_by_the_client_it_was_issued_to(sandbox: Sandbox) -> None:
    other = register(
        sandbox,
        RegisteredClient(
            provider="google", client_id="other", secret="s4", redirect_uris=("http://app.test/cb",)
        ),
    )
    params = consent_flow(authorize_url(sandbox, GOOGLE, ADA, GMAIL), ADA)
    stolen = token_call(
        sandbox,
        other,
        grant_type="authorization_code",
        code=params["code"],
        redirect_uri="http://app.test/cb",
        code_verifier="v" * 64,
    )
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
