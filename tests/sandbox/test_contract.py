"""The sandbox's contract: the labels, behaviours and admin endpoints other tests rely on."""

from __future__ import annotations

import base64
import html
import re
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from tests.conftest import Database, make_settings
from tests.sandbox_support import CONTRACT_CLIENT, Sandbox, consent_flow

VERIFIER = "v" * 64
CHALLENGE = create_s256_code_challenge(VERIFIER)


def authorize_url(sandbox: Sandbox, provider: str, email: str, scope: str) -> str:
    query = urlencode(
        {
            "client_id": "c",
            "redirect_uri": "http://app.test/cb",
            "response_type": "code",
            "scope": scope,
            "state": "st",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "login_hint": email,
        }
    )
    path = (
        "/google/o/oauth2/v2/auth"
        if provider == "google"
        else "/microsoft/common/oauth2/v2.0/authorize"
    )
    return f"{sandbox.url}{path}?{query}"


def token_for(sandbox: Sandbox, provider: str, email: str, scope: str) -> str:
    params = consent_flow(authorize_url(sandbox, provider, email, scope), email)
    token_path = "/google/token" if provider == "google" else "/microsoft/common/oauth2/v2.0/token"
    response = httpx.post(
        f"{sandbox.url}{token_path}",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "client_id": "c",
            "client_secret": CONTRACT_CLIENT.secret,
            "redirect_uri": "http://app.test/cb",
            "code_verifier": VERIFIER,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def mime(sender: str, tag: str) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, "grace@example.com", "Hi"
    mail["Message-ID"] = "<ours@sendwell.local>"
    mail["X-Sendwell-Send-Id"] = tag
    mail.set_content("Hello")
    return bytes(mail)


def send(sandbox: Sandbox, provider: str, token: str, raw: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if provider == "google":
        return httpx.post(
            f"{sandbox.url}/google/gmail/v1/users/me/messages/send",
            json={"raw": base64.urlsafe_b64encode(raw).decode()},
            headers=headers,
        )
    return httpx.post(
        f"{sandbox.url}/microsoft/graph/v1.0/me/sendMail",
        content=base64.b64encode(raw),
        headers={**headers, "Content-Type": "text/plain"},
    )


PROVIDERS = [
    (
        "google",
        "ada@gmail.test",
        "https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/gmail.metadata",
    ),
    ("microsoft", "ada@contoso.outlook.test", "offline_access Mail.Send Mail.ReadBasic User.Read"),
]


@pytest.mark.parametrize(("provider", "email", "scope"), PROVIDERS)
def test_sign_in_and_consent_pages_use_the_contract_labels(
    sandbox: Sandbox, provider: str, email: str, scope: str
) -> None:
    with httpx.Client() as browser:
        page = browser.get(authorize_url(sandbox, provider, email, scope))
        assert '<label for="email">Email</label>' in page.text
        assert '<label for="password">Password</label>' in page.text
        assert ">Sign in</button>" in page.text
        action = re.search(r'action="([^"]+)"', page.text)
        assert action
        consent = browser.post(
            urljoin(str(page.url), action.group(1)), data={"email": email, "password": "pw"}
        )
    boxes = re.findall(
        r'<input type="checkbox"[^>]*name="scope" value="([^"]+)" checked>', consent.text
    )
    assert boxes == scope.split()
    assert 'value="allow">Allow</button>' in consent.text
    assert 'value="cancel" class="secondary">Cancel</button>' in consent.text


def test_unticked_permission_is_not_granted(sandbox: Sandbox) -> None:
    provider, email, scope = PROVIDERS[0]
    send_scope = scope.split()[0]
    params = consent_flow(
        authorize_url(sandbox, provider, email, scope), email, untick=[send_scope]
    )
    assert send_scope not in params["scope"].split()


def test_needs_admin_gets_the_admin_approval_error(sandbox: Sandbox) -> None:
    email = "needs-admin@contoso.outlook.test"
    params = consent_flow(authorize_url(sandbox, "microsoft", email, PROVIDERS[1][2]), email)
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS90094")
    assert params["state"] == "st"


def test_wrong_provider_address_is_refused_on_the_sign_in_page(sandbox: Sandbox) -> None:
    with httpx.Client() as browser:
        page = browser.get(
            authorize_url(sandbox, "google", "ada@contoso.outlook.test", PROVIDERS[0][2])
        )
        action = re.search(r'action="([^"]+)"', page.text)
        assert action
        answer = browser.post(
            urljoin(str(page.url), action.group(1)),
            data={"email": "ada@contoso.outlook.test", "password": "pw"},
        )
    assert answer.status_code == 401
    assert "Couldn't find your Google account." in html.unescape(answer.text)


def test_missing_pkce_is_an_invalid_request(sandbox: Sandbox) -> None:
    url = authorize_url(sandbox, "google", "ada@gmail.test", "openid")
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "code_challenge"]
    response = httpx.get(parts._replace(query=urlencode(query)).geturl())
    assert response.status_code == 400
    assert "Required parameter is missing: code_challenge" in response.text


@pytest.mark.parametrize(("provider", "email", "scope"), PROVIDERS)
def test_send_assigns_its_own_message_id_and_keeps_x_headers(
    sandbox: Sandbox, provider: str, email: str, scope: str
) -> None:
    token = token_for(sandbox, provider, email, scope)
    response = send(sandbox, provider, token, mime(email, "tag-1"))
    assert response.status_code == (200 if provider == "google" else 202)
    (stored,) = sandbox.sent(email)
    assert stored["headers"]["X-Sendwell-Send-Id"] == "tag-1"
    assert stored["headers"]["Message-ID"] not in ("", "<ours@sendwell.local>")
    assert stored["to"] == ["grace@example.com"]
    assert {"id", "thread_id", "subject", "sent_at"} <= stored.keys()


@pytest.mark.parametrize(("provider", "email", "scope"), PROVIDERS)
def test_revoke_kills_refresh_and_api_access(
    sandbox: Sandbox, provider: str, email: str, scope: str
) -> None:
    token = token_for(sandbox, provider, email, scope)
    assert sandbox.admin("revoke", {"mailbox": email})["revoked"] == 1
    response = send(sandbox, provider, token, mime(email, "tag-1"))
    assert response.status_code == 401
    assert sandbox.sent(email) == []


@pytest.mark.parametrize(
    ("fault", "google_status", "microsoft_status"),
    [("rate_limit", 429, 429), ("server_error", 500, 503)],
)
@pytest.mark.parametrize(("provider", "email", "scope"), PROVIDERS)
def test_faults_fail_the_next_sends_then_clear(
    sandbox: Sandbox,
    provider: str,
    email: str,
    scope: str,
    fault: str,
    google_status: int,
    microsoft_status: int,
) -> None:
    token = token_for(sandbox, provider, email, scope)
    sandbox.admin("faults", {"mailbox": email, "fault": fault, "count": 2})
    expected = google_status if provider == "google" else microsoft_status
    assert [send(sandbox, provider, token, mime(email, f"t{i}")).status_code for i in range(3)] == [
        expected,
        expected,
        200 if provider == "google" else 202,
    ]
    assert len(sandbox.sent(email)) == 1


@pytest.mark.parametrize(("provider", "email", "scope"), PROVIDERS)
def test_drop_after_accept_stores_the_message_and_cuts_the_response(
    sandbox: Sandbox, provider: str, email: str, scope: str
) -> None:
    token = token_for(sandbox, provider, email, scope)
    sandbox.admin("faults", {"mailbox": email, "fault": "drop_after_accept"})
    with pytest.raises(httpx.RemoteProtocolError):
        send(sandbox, provider, token, mime(email, "tag-d"))
    assert [m["headers"]["X-Sendwell-Send-Id"] for m in sandbox.sent(email)] == ["tag-d"]


def test_timeout_fault_holds_the_request_and_sends_nothing(sandbox: Sandbox) -> None:
    provider, email, scope = PROVIDERS[0]
    token = token_for(sandbox, provider, email, scope)
    sandbox.admin("timeout", {"seconds": 1.5})
    sandbox.admin("faults", {"mailbox": email, "fault": "timeout"})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{sandbox.url}/google/gmail/v1/users/me/messages/send",
            json={"raw": base64.urlsafe_b64encode(mime(email, "t")).decode()},
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.5,
        )
    assert sandbox.sent(email) == []


def test_reply_and_bounce_land_threaded_in_the_inbox(sandbox: Sandbox) -> None:
    provider, email, scope = PROVIDERS[0]
    token = token_for(sandbox, provider, email, scope)
    send(sandbox, provider, token, mime(email, "tag-1"))
    (sent,) = sandbox.sent(email)
    reply = sandbox.admin(
        "reply", {"mailbox": email, "to_message_id": sent["id"], "from": "grace@example.com"}
    )
    bounce = sandbox.admin(
        "bounce", {"mailbox": email, "to_message_id": sent["headers"]["Message-ID"]}
    )
    assert reply["thread_id"] == bounce["thread_id"] == sent["thread_id"]
    inbox: list[dict[str, Any]] = httpx.get(
        f"{sandbox.url}/admin/messages", params={"mailbox": email, "folder": "inbox"}
    ).json()
    assert [m["headers"]["In-Reply-To"] for m in inbox] == [sent["headers"]["Message-ID"]] * 2
    assert inbox[1]["headers"]["X-Failed-Recipients"] == "grace@example.com"


def test_admin_errors_are_clear(sandbox: Sandbox) -> None:
    unknown = httpx.post(
        f"{sandbox.url}/admin/faults", json={"mailbox": "ada@gmail.test", "fault": "gremlins"}
    )
    assert unknown.status_code == 400
    assert "unknown fault 'gremlins'" in unknown.json()["error"]
    foreign = httpx.post(f"{sandbox.url}/admin/revoke", json={"mailbox": "ada@example.com"})
    assert foreign.status_code == 400
    missing = httpx.post(
        f"{sandbox.url}/admin/reply", json={"mailbox": "ada@gmail.test", "to_message_id": "nope"}
    )
    assert missing.status_code == 404


def test_reset_forgets_everything(sandbox: Sandbox) -> None:
    provider, email, scope = PROVIDERS[0]
    token = token_for(sandbox, provider, email, scope)
    send(sandbox, provider, token, mime(email, "tag-1"))
    sandbox.admin("reset")
    assert sandbox.sent(email) == []
    assert send(sandbox, provider, token, mime(email, "tag-2")).status_code == 401


def test_recreate_gives_the_address_a_new_subject(sandbox: Sandbox) -> None:
    before = sandbox.state.mailbox("ada@gmail.test").subject
    after = sandbox.admin("recreate", {"mailbox": "ada@gmail.test"})["subject"]
    assert after != before


def test_sandbox_is_off_unless_enabled(database: Database, engine: Engine) -> None:
    with TestClient(create_app(make_settings(database.url), engine=engine)) as client:
        assert client.get("/sandbox/admin/messages?mailbox=a@gmail.test").status_code == 404
    enabled = make_settings(database.url, sandbox=True, sandbox_admin_token="t" * 32)
    admin = {"Authorization": f"Bearer {'t' * 32}"}
    with TestClient(create_app(enabled, engine=engine)) as client:
        response = client.get("/sandbox/admin/messages?mailbox=a@gmail.test", headers=admin)
        assert response.status_code == 200
        assert response.json() == []
        assert client.post("/sandbox/admin/reset", headers=admin).status_code == 200
