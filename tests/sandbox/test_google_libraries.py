"""Google's own client libraries against the sandbox: the OAuth flow, a refresh, and Gmail."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import pytest
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build_from_document

from sendwell.sandbox.state import RegisteredClient
from tests.sandbox.conftest import trusting
from tests.sandbox.gmail_schema import DOCUMENT
from tests.sandbox_support import Sandbox, consent_flow

CLIENT = RegisteredClient(
    provider="google",
    client_id="google-libraries",
    secret="libraries-secret",
    redirect_uris=("https://127.0.0.1:9/google/callback",),
)
USER = "ada@gmail.test"
SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.metadata",
]


@pytest.fixture
def flow(tls_sandbox: Sandbox) -> Iterator[Flow]:
    tls_sandbox.state.register(CLIENT)
    config = {
        "web": {
            "client_id": CLIENT.client_id,
            "client_secret": CLIENT.secret,
            "auth_uri": f"{tls_sandbox.url}/google/o/oauth2/v2/auth",
            "token_uri": f"{tls_sandbox.url}/google/token",
            "redirect_uris": list(CLIENT.redirect_uris),
        }
    }
    made = Flow.from_client_config(
        config, scopes=SCOPES, redirect_uri=CLIENT.redirect_uris[0], autogenerate_code_verifier=True
    )
    made.oauth2session.trust_env = False
    made.oauth2session.verify = tls_sandbox.ca_file
    yield made
    made.oauth2session.close()


def signed_in(tls_sandbox: Sandbox, flow: Flow) -> Credentials:
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", login_hint=USER)
    assert "code_challenge_method=S256" in url
    answer = consent_flow(url, USER, verify=tls_sandbox.verify)
    flow.fetch_token(code=answer["code"])
    credentials: Credentials = flow.credentials
    return credentials


def gmail(tls_sandbox: Sandbox, credentials: Credentials) -> Any:
    """Gmail built from Google's discovery document, its root moved to the sandbox."""
    document = json.loads(DOCUMENT.read_text())
    document["rootUrl"] = document["baseUrl"] = f"{tls_sandbox.url}/google/"
    http = google_auth_httplib2.AuthorizedHttp(
        credentials, http=httplib2.Http(ca_certs=tls_sandbox.ca_file)
    )
    return build_from_document(document, http=http)


def test_the_oauthlib_flow_with_pkce_and_a_credentials_refresh(
    tls_sandbox: Sandbox, flow: Flow
) -> None:
    credentials = signed_in(tls_sandbox, flow)
    assert credentials.refresh_token
    assert set(SCOPES) - {"https://www.googleapis.com/auth/userinfo.email"} <= set(
        credentials.granted_scopes or []
    )
    first = credentials.token
    with trusting(tls_sandbox) as session:
        credentials.refresh(google.auth.transport.requests.Request(session))
    assert credentials.token
    assert credentials.token != first
    assert credentials.valid


def test_the_gmail_client_from_the_discovery_document(tls_sandbox: Sandbox, flow: Flow) -> None:
    with gmail(tls_sandbox, signed_in(tls_sandbox, flow)) as service:
        check_gmail_calls(tls_sandbox, service)


def check_gmail_calls(tls_sandbox: Sandbox, service: Any) -> None:
    """The five Gmail calls Sendwell makes, through Google's generated client."""
    users = service.users()
    start = users.getProfile(userId="me").execute()
    assert start["emailAddress"] == USER

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = USER, "grace@example.com", "Hello"
    mail["X-Sendwell-Send-Id"] = "tag-lib"
    mail.set_content("Hi Grace")
    raw = base64.urlsafe_b64encode(bytes(mail)).decode()
    sent = users.messages().send(userId="me", body={"raw": raw}).execute()
    assert sent["labelIds"] == ["SENT"]

    listed = users.messages().list(userId="me", labelIds=["SENT"], maxResults=50).execute()
    assert [m["id"] for m in listed["messages"]] == [sent["id"]]
    metadata = (
        users.messages()
        .get(
            userId="me",
            id=sent["id"],
            format="metadata",
            metadataHeaders=["X-Sendwell-Send-Id", "Message-ID"],
        )
        .execute()
    )
    headers = {h["name"]: h["value"] for h in metadata["payload"]["headers"]}
    assert headers["X-Sendwell-Send-Id"] == "tag-lib"
    assert int(metadata["internalDate"]) > 0

    tls_sandbox.admin("reply", {"mailbox": USER, "to_message_id": sent["id"]})
    history = (
        users.history()
        .list(
            userId="me",
            startHistoryId=start["historyId"],
            historyTypes=["messageAdded"],
            labelId="INBOX",
        )
        .execute()
    )
    added = [r["messagesAdded"][0]["message"]["threadId"] for r in history["history"]]
    assert added == [sent["threadId"]]
