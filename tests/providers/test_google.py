"""The Google client against the emulated Google over real HTTP: every error-mapping row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sendwell.providers import oauth
from sendwell.providers.base import Grant, SentProbe
from sendwell.providers.credentials import AccessToken
from sendwell.providers.errors import (
    AuthRevoked,
    ConsentDeclined,
    InsufficientScope,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Transient,
)
from sendwell.providers.google import (
    METADATA_SCOPE,
    SEND_SCOPE,
    GoogleEndpoints,
    GoogleProvider,
)
from tests.sandbox_support import Sandbox, consent_flow

REDIRECT = "http://127.0.0.1:8000/mailboxes/callback/google"
ADDRESS = "ada@gmail.test"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def google(sandbox: Sandbox, http: httpx.Client) -> GoogleProvider:
    return GoogleProvider(
        client_id="sendwell-test",
        client_secret="secret",
        endpoints=GoogleEndpoints.sandbox(sandbox.url),
        http=http,
    )


def authorize(google: GoogleProvider, email: str = ADDRESS, **flow: object) -> dict[str, str]:
    verifier = oauth.new_code_verifier()
    url = google.authorization_url(
        redirect_uri=REDIRECT, state="s1", code_verifier=verifier, login_hint=email
    )
    params = consent_flow(url, email, **flow)  # type: ignore[arg-type]
    params["_verifier"] = verifier
    return params


def link(google: GoogleProvider, email: str = ADDRESS) -> Grant:
    params = authorize(google, email)
    return google.complete_authorization(
        callback_params=params, redirect_uri=REDIRECT, code_verifier=params["_verifier"]
    )


def probe(tag: str) -> SentProbe:
    since = datetime.now(UTC) - timedelta(minutes=1)
    return SentProbe(tag=tag, recipient="grace@example.com", subject="Hello", since=since)


def message(
    to: str = "grace@example.com", subject: str = "Hello", tag: str = "tag-1", **headers: str
) -> bytes:
    mail = EmailMessage()
    mail["From"] = ADDRESS
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = "<ours@sendwell.local>"
    mail["X-Sendwell-Send-Id"] = tag
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content("Hi Grace")
    return bytes(mail)


def test_authorization_url_asks_for_offline_access_with_pkce(google: GoogleProvider) -> None:
    url = google.authorization_url(
        redirect_uri=REDIRECT, state="abc", code_verifier="v" * 64, login_hint=ADDRESS
    )
    query = parse_qs(urlsplit(url).query)
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]
    assert query["include_granted_scopes"] == ["true"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["login_hint"] == [ADDRESS]
    assert set(query["scope"][0].split()) == {SEND_SCOPE, METADATA_SCOPE, "openid", "email"}


def test_link_returns_tokens_scopes_and_the_stable_subject(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    grant = link(google)
    assert grant.identity.email == ADDRESS
    assert grant.identity.subject == sandbox.state.mailbox(ADDRESS).subject
    assert grant.tokens.refresh_token
    assert {SEND_SCOPE, METADATA_SCOPE} <= grant.tokens.scopes


def test_wrong_code_verifier_is_refused(google: GoogleProvider) -> None:
    params = authorize(google)
    with pytest.raises(AuthRevoked) as caught:
        google.complete_authorization(
            callback_params=params, redirect_uri=REDIRECT, code_verifier=oauth.new_code_verifier()
        )
    assert caught.value.code == "invalid_grant"


def test_code_cannot_be_used_twice(google: GoogleProvider) -> None:
    params = authorize(google)
    google.complete_authorization(
        callback_params=params, redirect_uri=REDIRECT, code_verifier=params["_verifier"]
    )
    with pytest.raises(AuthRevoked):
        google.complete_authorization(
            callback_params=params, redirect_uri=REDIRECT, code_verifier=params["_verifier"]
        )


def test_cancel_is_consent_declined(google: GoogleProvider) -> None:
    params = authorize(google, action="cancel")
    assert params["error"] == "access_denied"
    with pytest.raises(ConsentDeclined):
        google.complete_authorization(
            callback_params=params, redirect_uri=REDIRECT, code_verifier=params["_verifier"]
        )


def test_unticked_permission_is_insufficient_scope(google: GoogleProvider) -> None:
    params = authorize(google, untick=[METADATA_SCOPE])
    with pytest.raises(InsufficientScope) as caught:
        google.complete_authorization(
            callback_params=params, redirect_uri=REDIRECT, code_verifier=params["_verifier"]
        )
    assert caught.value.missing == {METADATA_SCOPE}


def test_refresh_keeps_the_refresh_token(google: GoogleProvider) -> None:
    grant = link(google)
    assert grant.tokens.refresh_token
    refreshed = google.refresh(grant.tokens.refresh_token)
    assert refreshed.refresh_token is None
    assert refreshed.access_token != grant.tokens.access_token
    assert google.refresh(grant.tokens.refresh_token).access_token


def test_revoked_grant_fails_refresh_and_api_calls(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    grant = link(google)
    assert sandbox.admin("revoke", {"mailbox": ADDRESS}) == {"revoked": 1}
    with pytest.raises(AuthRevoked) as refresh_error:
        google.refresh(grant.tokens.refresh_token or "")
    assert refresh_error.value.code == "invalid_grant"
    with pytest.raises(AuthRevoked) as api_error:
        google.send(AccessToken(grant.tokens.access_token), message(), tag="tag-1")
    assert api_error.value.code == "authError"


def test_revoke_at_google(google: GoogleProvider) -> None:
    grant = link(google)
    assert google.revoke(grant.tokens.refresh_token or "") is True
    with pytest.raises(AuthRevoked):
        google.refresh(grant.tokens.refresh_token or "")
    assert google.revoke(grant.tokens.refresh_token or "") is True


def test_invalid_client_is_a_configuration_error(google: GoogleProvider, sandbox: Sandbox) -> None:
    grant = link(google)
    sandbox.admin("token-errors", {"mailbox": ADDRESS, "code": "invalid_client"})
    with pytest.raises(ProviderError) as caught:
        google.refresh(grant.tokens.refresh_token or "")
    assert type(caught.value) is ProviderError
    assert caught.value.code == "invalid_client"


def test_send_rewrites_message_id_keeps_our_tag_and_threads_follow_ups(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    first = google.send(token, message(tag="tag-1"), tag="tag-1")
    assert first.message_id_header
    assert first.message_id_header != "<ours@sendwell.local>"
    follow_up = google.send(
        token,
        message(
            subject="Re: Hello",
            tag="tag-2",
            In_Reply_To=first.message_id_header,
            References=first.message_id_header,
        ),
        tag="tag-2",
        thread_id=first.thread_id,
    )
    assert follow_up.thread_id == first.thread_id
    sent = sandbox.sent(ADDRESS)
    assert [m["headers"]["X-Sendwell-Send-Id"] for m in sent] == ["tag-1", "tag-2"]
    assert sent[1]["headers"]["In-Reply-To"] == first.message_id_header


def test_thread_id_without_reply_headers_starts_a_new_thread(google: GoogleProvider) -> None:
    token = AccessToken(link(google).tokens.access_token)
    first = google.send(token, message(tag="tag-1"), tag="tag-1")
    second = google.send(
        token, message(subject="Other", tag="tag-2"), tag="tag-2", thread_id=first.thread_id
    )
    assert second.thread_id != first.thread_id


def test_rate_limit_is_rate_limited_with_the_retry_time(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "rate_limit"})
    with pytest.raises(RateLimited) as caught:
        google.send(token, message(), tag="tag-1")
    assert caught.value.code == "rateLimitExceeded"
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 31
    assert sandbox.sent(ADDRESS) == []


def test_user_rate_limit_is_rate_limited(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "quota_exceeded"})
    with pytest.raises(RateLimited) as caught:
        google.send(token, message(), tag="tag-1")
    assert caught.value.code == "userRateLimitExceeded"


def test_server_error_is_transient(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "server_error"})
    with pytest.raises(Transient):
        google.send(token, message(), tag="tag-1")
    assert sandbox.sent(ADDRESS) == []


def test_forbidden_is_insufficient_scope(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "forbidden"})
    with pytest.raises(InsufficientScope):
        google.send(token, message(), tag="tag-1")


def test_mail_service_not_enabled_needs_the_user(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "mailbox_not_enabled"})
    with pytest.raises(AuthRevoked) as caught:
        google.send(token, message(), tag="tag-1")
    assert "not enabled" in caught.value.message


def test_cut_response_is_outcome_unknown_and_found_by_tag(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    google.send(token, message(tag="earlier"), tag="earlier")
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "drop_after_accept"})
    with pytest.raises(OutcomeUnknown):
        google.send(token, message(tag="tag-9"), tag="tag-9")
    [found] = google.find_sent(token, probe("tag-9"))
    stored = [m for m in sandbox.sent(ADDRESS) if m["headers"]["X-Sendwell-Send-Id"] == "tag-9"]
    assert len(stored) == 1
    assert found.provider_message_id == stored[0]["id"]
    assert found.message_id_header == stored[0]["headers"]["Message-ID"]


def test_timeout_is_outcome_unknown_and_nothing_was_sent(sandbox: Sandbox) -> None:
    with httpx.Client(timeout=5) as http:
        google = GoogleProvider(
            client_id="sendwell-test",
            client_secret="secret",
            endpoints=GoogleEndpoints.sandbox(sandbox.url),
            http=http,
        )
        token = AccessToken(link(google).tokens.access_token)
    sandbox.admin("timeout", {"seconds": 2})
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "timeout"})
    with httpx.Client(timeout=0.5) as impatient:
        google = GoogleProvider(
            client_id="sendwell-test",
            client_secret="secret",
            endpoints=GoogleEndpoints.sandbox(sandbox.url),
            http=impatient,
        )
        with pytest.raises(OutcomeUnknown):
            google.send(token, message(tag="tag-t"), tag="tag-t")
        assert google.find_sent(token, probe("tag-t")) == []


def test_unreachable_host_is_transient(http: httpx.Client) -> None:
    google = GoogleProvider(
        client_id="x",
        client_secret="y",
        endpoints=GoogleEndpoints.sandbox("http://127.0.0.1:9/sandbox"),
        http=http,
    )
    with pytest.raises(Transient):
        google.send(AccessToken("token"), message(), tag="tag-1")


def test_inbound_replies_and_bounces_since_a_cursor(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sent = google.send(token, message(), tag="tag-1")
    cursor = google.list_inbound(token, None).cursor
    sandbox.admin(
        "reply",
        {"mailbox": ADDRESS, "to_message_id": sent.message_id_header, "from": "grace@example.com"},
    )
    sandbox.admin("bounce", {"mailbox": ADDRESS, "to_message_id": sent.provider_message_id})
    page = google.list_inbound(token, cursor)
    assert [m.in_reply_to for m in page.messages] == [sent.message_id_header] * 2
    reply, bounce = page.messages
    assert reply.thread_id == sent.thread_id
    assert reply.from_address == "grace@example.com"
    assert bounce.headers["x-failed-recipients"] == "grace@example.com"
    assert google.list_inbound(token, page.cursor).messages == []


def test_history_is_read_page_by_page(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sent = google.send(token, message(), tag="tag-1")
    cursor = google.list_inbound(token, None).cursor
    for _ in range(230):  # more than two of users.history.list's default pages of 100
        sandbox.admin("reply", {"mailbox": ADDRESS, "to_message_id": sent.message_id_header})
    bare = httpx.get(
        f"{sandbox.url}/google/gmail/v1/users/me/history",
        params={"startHistoryId": cursor, "labelId": "INBOX"},
        headers={"Authorization": f"Bearer {token.bearer}"},
    ).json()
    assert len(bare["history"]) == 100
    assert "nextPageToken" in bare
    page = google.list_inbound(token, cursor)
    assert len({m.provider_message_id for m in page.messages}) == 230
    assert google.list_inbound(token, page.cursor).messages == []


def test_a_message_deleted_after_its_history_record_is_passed_over(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sent = google.send(token, message(), tag="tag-1")
    cursor = google.list_inbound(token, None).cursor
    gone = sandbox.admin("reply", {"mailbox": ADDRESS, "to_message_id": sent.message_id_header})
    kept = sandbox.admin("reply", {"mailbox": ADDRESS, "to_message_id": sent.message_id_header})
    sandbox.admin("delete", {"mailbox": ADDRESS, "message_id": gone["id"]})
    page = google.list_inbound(token, cursor)
    assert [m.provider_message_id for m in page.messages] == [kept["id"]]
    assert int(page.cursor) > int(cursor)
    assert google.list_inbound(token, page.cursor).messages == []


def test_a_sending_limit_bounce_follows_an_accepted_send(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    """Gmail: "You can't assume that a 200 response means the email was successfully sent"."""
    token = AccessToken(link(google).tokens.access_token)
    cursor = google.list_inbound(token, None).cursor
    sandbox.admin("faults", {"mailbox": ADDRESS, "fault": "quota_bounce"})
    sent = google.send(token, message(), tag="tag-q")
    [stored] = sandbox.sent(ADDRESS)
    assert stored["delivered"] is False
    [notice] = google.list_inbound(token, cursor).messages
    assert notice.in_reply_to == sent.message_id_header
    assert "mailer-daemon@googlemail.com" in notice.from_address
    assert "x-failed-recipients" not in notice.headers


def test_metadata_scope_refuses_search(google: GoogleProvider, sandbox: Sandbox) -> None:
    token = AccessToken(link(google).tokens.access_token)
    response = httpx.get(
        f"{sandbox.url}/google/gmail/v1/users/me/messages",
        params={"q": "from:grace"},
        headers={"Authorization": f"Bearer {token.bearer}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Metadata scope does not support 'q' parameter"


def test_expired_history_cursor_resyncs_from_the_inbox(
    google: GoogleProvider, sandbox: Sandbox
) -> None:
    token = AccessToken(link(google).tokens.access_token)
    sent = google.send(token, message(), tag="tag-1")
    sandbox.admin("reply", {"mailbox": ADDRESS, "to_message_id": sent.provider_message_id})
    page = google.list_inbound(token, "5")
    assert [m.in_reply_to for m in page.messages] == [sent.message_id_header]
    assert int(page.cursor) >= 1000
    assert google.list_inbound(token, page.cursor).messages == []
