"""The Microsoft client against the sandbox's emulated Entra ID and Graph, over real HTTP."""

from __future__ import annotations

import contextlib
import html
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urljoin, urlsplit

import httpx
import pytest
import uvicorn

from sendwell.providers import oauth
from sendwell.providers.base import TAG_HEADER, Grant, SentMessage, SentProbe
from sendwell.providers.credentials import AccessToken
from sendwell.providers.errors import (
    AdminApprovalRequired,
    AuthRevoked,
    ConsentDeclined,
    InsufficientScope,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    RecipientRejected,
    SendingBlocked,
    Transient,
)
from sendwell.providers.microsoft import MicrosoftEndpoints, MicrosoftProvider
from sendwell.sandbox.app import create_standalone_app
from sendwell.sandbox.state import SandboxState
from tests.sandbox_support import known_clients

REDIRECT = "http://127.0.0.1:9/oauth/microsoft/callback"
CLIENT_ID = "sendwell-sandbox"
USER = "ada@contoso.outlook.test"
RECIPIENT = "grace@example.com"
SUBJECT = "Quick question"
FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
SCOPE_BOX = re.compile(r'name="scope" value="([^"]+)"')
RETURN_LINK = re.compile(r'<a href="([^"]+)">Return to the application')


@dataclass
class Sandbox:
    base: str
    state: SandboxState
    admin: httpx.Client

    def post(self, path: str, **body: Any) -> Any:
        response = self.admin.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def sent(self, mailbox: str = USER) -> list[dict[str, Any]]:
        response = self.admin.get("/messages", params={"mailbox": mailbox})
        response.raise_for_status()
        return list(response.json())


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, SandboxState]]:
    state = SandboxState(clients=known_clients())
    config = uvicorn.Config(
        create_standalone_app(state), host="127.0.0.1", port=0, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive(), "sandbox did not start"
        assert time.monotonic() < deadline, "sandbox did not start in time"
        time.sleep(0.02)
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/sandbox", state
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def sandbox(server: tuple[str, SandboxState]) -> Iterator[Sandbox]:
    base, state = server
    state.reset()
    state.timeout_seconds = 30.0
    with httpx.Client(base_url=f"{base}/admin", timeout=5) as admin:
        yield Sandbox(base, state, admin)


def make_provider(sandbox: Sandbox, *, timeout: float = 5.0) -> Iterator[MicrosoftProvider]:
    with httpx.Client(timeout=timeout) as http:
        yield MicrosoftProvider(
            client_id=CLIENT_ID,
            client_secret="sandbox-secret",
            endpoints=MicrosoftEndpoints.sandbox(sandbox.base),
            http=http,
        )


@pytest.fixture
def provider(sandbox: Sandbox) -> Iterator[MicrosoftProvider]:
    yield from make_provider(sandbox)


@dataclass
class Callback:
    params: dict[str, str]
    verifier: str


def sign_in(
    provider: MicrosoftProvider, email: str = USER, *, action: str = "allow", untick: str = ""
) -> Callback:
    """Drive the sandbox's sign-in and consent pages like a browser; the redirect's params."""
    verifier, state = oauth.new_code_verifier(), oauth.new_state()
    url = provider.authorization_url(
        redirect_uri=REDIRECT, state=state, code_verifier=verifier, login_hint=email
    )
    with httpx.Client(timeout=5) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        form = FORM_ACTION.search(page.text)
        assert form is not None
        page = browser.post(
            urljoin(url, html.unescape(form.group(1))), data={"email": email, "password": "pw"}
        )
        assert page.status_code == 200, page.text
        if (link := RETURN_LINK.search(page.text)) is not None:
            return Callback(query(html.unescape(link.group(1))), verifier)
        form = FORM_ACTION.search(page.text)
        assert form is not None
        scopes = [s for s in SCOPE_BOX.findall(page.text) if s != untick]
        answer = browser.post(
            urljoin(url, html.unescape(form.group(1))), data={"action": action, "scope": scopes}
        )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    params = query(location)
    assert params["state"] == state
    return Callback(params, verifier)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def complete(provider: MicrosoftProvider, callback: Callback) -> Grant:
    return provider.complete_authorization(
        callback_params=callback.params, redirect_uri=REDIRECT, code_verifier=callback.verifier
    )


def link(provider: MicrosoftProvider, email: str = USER) -> Grant:
    return complete(provider, sign_in(provider, email))


def probe(
    tag: str = "", *, subject: str = "Quick question", since: datetime | None = None
) -> SentProbe:
    """A send to RECIPIENT with this subject, claimed `since` (a minute ago by default)."""
    moment = since or datetime.now(UTC) - timedelta(minutes=1)
    return SentProbe(tag=tag, recipient=RECIPIENT, subject=subject, since=moment)


def send_and_find(
    provider: MicrosoftProvider, access: AccessToken, tag: str, **options: str
) -> SentMessage:
    """Send, then learn where the message landed from Sent Items, as the dispatcher does."""
    assert provider.send(access, mime(tag, **options), tag=tag) == SentMessage("", "", "")
    copies = provider.find_sent(access, probe(tag, subject=options.get("subject", SUBJECT)))
    assert copies, "the copy is in Sent Items"
    return copies[0]


def mime(tag: str, *, subject: str = "Quick question", reply_to: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = USER
    message["To"] = RECIPIENT
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="sendwell.test")
    message[TAG_HEADER] = tag
    if reply_to:
        message["In-Reply-To"] = reply_to
        message["References"] = reply_to
    message.set_content("Hello Grace,\n\nDo you have ten minutes next week?\n")
    return message.as_bytes()


# --- authorization -------------------------------------------------------------------------


def test_authorization_url_asks_for_the_documented_parameters(
    provider: MicrosoftProvider,
) -> None:
    url = provider.authorization_url(
        redirect_uri=REDIRECT, state="s1", code_verifier="v" * 64, login_hint=USER
    )
    assert url.startswith(f"{provider.endpoints.login}/common/oauth2/v2.0/authorize?")
    params = query(url)
    assert params["scope"] == "offline_access Mail.Send Mail.ReadBasic User.Read openid"
    assert params["response_type"] == "code"
    assert params["response_mode"] == "query"
    assert params["prompt"] == "select_account"
    assert params["login_hint"] == USER
    assert params["code_challenge_method"] == "S256"
    assert params["client_id"] == CLIENT_ID
    assert {p.scope for p in provider.permissions} == set(params["scope"].split())


def test_linking_yields_tokens_and_the_mailbox_identity(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    subject = sandbox.post("/recreate", mailbox=USER)["subject"]
    grant = link(provider)
    assert grant.identity.subject == subject
    assert grant.identity.email == USER
    assert grant.tokens.refresh_token
    assert {"Mail.Send", "Mail.ReadBasic", "User.Read"} <= grant.tokens.scopes


def test_cancel_on_the_consent_page_is_consent_declined(provider: MicrosoftProvider) -> None:
    callback = sign_in(provider, action="cancel")
    with pytest.raises(ConsentDeclined):
        complete(provider, callback)


def test_an_organisation_requiring_admin_approval(provider: MicrosoftProvider) -> None:
    callback = sign_in(provider, "needs-admin@contoso.outlook.test")
    with pytest.raises(AdminApprovalRequired) as caught:
        complete(provider, callback)
    assert caught.value.code == "AADSTS90094"


@pytest.mark.parametrize(
    ("params", "expected", "code"),
    [
        ({"error": "consent_required", "error_description": "AADSTS65001: no"}, "admin", ""),
        ({"error": "consent_required"}, "admin", "consent_required"),
        ({"error": "access_denied", "error_description": "AADSTS65004: declined"}, "declined", ""),
        ({"error": "invalid_request", "error_description": "AADSTS50011: bad uri"}, "other", ""),
        ({"state": "x"}, "other", "no_code"),
    ],
)
def test_callback_errors(
    provider: MicrosoftProvider, params: dict[str, str], expected: str, code: str
) -> None:
    kinds = {"admin": AdminApprovalRequired, "declined": ConsentDeclined, "other": ProviderError}
    with pytest.raises(ProviderError) as caught:
        complete(provider, Callback(params, "v" * 64))
    assert type(caught.value) is kinds[expected]
    if code:
        assert caught.value.code == code


def test_a_permission_left_unticked_is_insufficient_scope(provider: MicrosoftProvider) -> None:
    callback = sign_in(provider, untick="Mail.ReadBasic")
    with pytest.raises(InsufficientScope) as caught:
        complete(provider, callback)
    assert caught.value.missing == frozenset({"Mail.ReadBasic"})


# --- tokens ---------------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(provider: MicrosoftProvider) -> None:
    grant = link(provider)
    old = grant.tokens.refresh_token
    assert old is not None
    tokens = provider.refresh(old)
    assert tokens.refresh_token is not None
    assert tokens.refresh_token != old
    again = provider.refresh(tokens.refresh_token)
    assert again.refresh_token is not None
    assert again.refresh_token != tokens.refresh_token
    assert provider.find_sent(AccessToken(again.access_token), probe("nothing-sent")) == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AADSTS70008", AuthRevoked),
        ("AADSTS700082", AuthRevoked),
        ("AADSTS50173", AuthRevoked),
        ("AADSTS50076", AuthRevoked),
        ("AADSTS50079", AuthRevoked),
        ("AADSTS65001", AdminApprovalRequired),
        ("AADSTS90093", AdminApprovalRequired),
        ("AADSTS90094", AdminApprovalRequired),
    ],
)
def test_token_endpoint_errors(
    sandbox: Sandbox, provider: MicrosoftProvider, code: str, error: type[ProviderError]
) -> None:
    refresh_token = link(provider).tokens.refresh_token
    assert refresh_token is not None
    sandbox.post("/token-errors", mailbox=USER, code=code)
    with pytest.raises(ProviderError) as caught:
        provider.refresh(refresh_token)
    assert type(caught.value) is error
    assert caught.value.code == code


def test_a_revoked_grant_is_auth_revoked_everywhere(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    grant = link(provider)
    assert grant.tokens.refresh_token is not None
    sandbox.post("/revoke", mailbox=USER)
    with pytest.raises(AuthRevoked) as caught:
        provider.refresh(grant.tokens.refresh_token)
    assert caught.value.code == "AADSTS50173"
    with pytest.raises(AuthRevoked):
        provider.find_sent(AccessToken(grant.tokens.access_token), probe("tag"))
    with pytest.raises(AuthRevoked):
        provider.send(AccessToken(grant.tokens.access_token), mime("t-1"), tag="t-1")
    with pytest.raises(AuthRevoked):
        provider.list_inbound(AccessToken(grant.tokens.access_token), "2026-01-01T00:00:00Z|")


def test_revoke_is_not_offered_and_makes_no_request() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        provider = MicrosoftProvider(
            client_id=CLIENT_ID, client_secret="s", endpoints=MicrosoftEndpoints(), http=http
        )
        assert provider.revoke("0.AX-refresh") is False
    assert requests == []


# --- sending --------------------------------------------------------------------------------


def test_send_is_accepted_and_its_copy_found_by_recipient_and_subject(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    raw = mime("send-1")
    sent = send_and_find(provider, access, "send-1")
    [stored] = sandbox.sent()
    assert stored["headers"]["Message-ID"] != message_id_of(raw)
    assert sent == SentMessage(stored["id"], stored["thread_id"], stored["headers"]["Message-ID"])

    follow_up = send_and_find(
        provider, access, "send-2", subject="Re: Quick question", reply_to=sent.message_id_header
    )
    assert follow_up.thread_id == sent.thread_id
    assert follow_up.provider_message_id != sent.provider_message_id
    other = provider.find_sent(access, probe(subject="Something else"))
    assert other == []


def message_id_of(raw: bytes) -> str:
    return str(message_from_bytes(raw)["Message-ID"])


def test_copies_in_sent_items_carry_no_internet_headers(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    """Graph's maintainers: internet headers do not exist on the copy in Sent Items."""
    access = AccessToken(link(provider).tokens.access_token)
    send_and_find(provider, access, "hdr-1")
    url = f"{provider.endpoints.graph}/me/mailFolders/sentitems/messages"
    listing = httpx.get(
        url,
        params={"$select": "id,internetMessageHeaders"},
        headers={"Authorization": f"Bearer {access.bearer}"},
    ).json()
    assert listing["value"]
    assert all("internetMessageHeaders" not in item for item in listing["value"])


def test_the_copy_appears_only_after_the_accepted_answer(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/mailbox-settings", mailbox=USER, sent_copy_delay=0.6)
    assert provider.send(access, mime("late"), tag="late") == SentMessage("", "", "")
    assert provider.find_sent(access, probe("late")) == []
    time.sleep(0.8)
    [copy] = provider.find_sent(access, probe("late"))
    assert copy.message_id_header == sandbox.sent()[0]["headers"]["Message-ID"]


def test_found_without_our_header_when_exchange_drops_it(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/mailbox-settings", mailbox=USER, drop_custom_headers=True)
    sent = send_and_find(provider, access, "dropped")
    [stored] = sandbox.sent()
    assert TAG_HEADER not in stored["headers"]
    assert sent.provider_message_id == stored["id"]


def test_every_copy_to_the_recipient_with_the_subject_since_the_claim_newest_first(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    provider.send(access, mime("same-1"), tag="same-1")
    time.sleep(1.1)  # Graph reports whole seconds
    claimed = datetime.now(UTC)
    provider.send(access, mime("same-2"), tag="same-2")
    stored = sandbox.sent()
    copies = provider.find_sent(access, probe(since=claimed))
    assert [c.provider_message_id for c in copies] == [stored[1]["id"], stored[0]["id"]]


def test_an_order_not_led_by_the_filter_is_refused_like_graph(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    response = httpx.get(
        f"{provider.endpoints.graph}/me/mailFolders/sentitems/messages",
        params={"$filter": "sentDateTime ge 2026-01-01T00:00:00Z", "$orderby": "subject"},
        headers={"Authorization": f"Bearer {access.bearer}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InefficientFilter"


def test_over_the_daily_recipient_limit_sending_waits(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/mailbox-settings", mailbox=USER, recipients_per_day=2)
    provider.send(access, mime("d-1"), tag="d-1")
    provider.send(access, mime("d-2"), tag="d-2")
    with pytest.raises(RateLimited) as caught:
        provider.send(access, mime("d-3"), tag="d-3")
    assert caught.value.code == "ErrorSubmissionQuotaExceeded"
    assert caught.value.retry_after == 3600
    assert len(sandbox.sent()) == 2


def test_over_the_per_minute_rate_the_rest_is_carried_over(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/mailbox-settings", mailbox=USER, messages_per_minute=2)
    for n in range(3):
        provider.send(access, mime(f"m-{n}", subject=f"Note {n}"), tag=f"m-{n}")
    assert len(sandbox.sent()) == 3
    assert provider.find_sent(access, probe(subject="Note 1"))
    assert provider.find_sent(access, probe(subject="Note 2")) == []


def test_more_than_four_requests_at_once_are_throttled(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/mailbox-settings", mailbox=USER, concurrent_requests=1)
    sandbox.post("/timeout", seconds=1.5)
    sandbox.post("/faults", mailbox=USER, fault="timeout")
    hung = threading.Thread(target=lambda: _ignore_outcome(provider, access))
    hung.start()
    time.sleep(0.4)
    with pytest.raises(RateLimited) as caught:
        provider.find_sent(access, probe())
    hung.join()
    assert caught.value.code == "ApplicationThrottled"
    assert provider.find_sent(access, probe()) == []


def _ignore_outcome(provider: MicrosoftProvider, access: AccessToken) -> None:
    with contextlib.suppress(ProviderError):
        provider.send(access, mime("hung"), tag="hung")


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("rate_limit", RateLimited, "ApplicationThrottled"),
        ("server_error", Transient, "ServiceUnavailable"),
        ("forbidden", InsufficientScope, "ErrorAccessDenied"),
        ("mailbox_not_enabled", AuthRevoked, "MailboxNotEnabledForRESTAPI"),
        ("unauthorized", AuthRevoked, "InvalidAuthenticationToken"),
        ("quota_exceeded", SendingBlocked, "ErrorExceededMessageLimit"),
        ("mailbox_full", SendingBlocked, "ErrorQuotaExceeded"),
        ("rate_limit_fractional", RateLimited, "TooManyRequests"),
        ("rate_limit_bare", RateLimited, "TooManyRequests"),
    ],
)
def test_send_faults(
    sandbox: Sandbox,
    provider: MicrosoftProvider,
    fault: str,
    error: type[ProviderError],
    code: str,
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    sandbox.post("/faults", mailbox=USER, fault=fault)
    with pytest.raises(ProviderError) as caught:
        provider.send(access, mime("f-1"), tag="f-1")
    assert type(caught.value) is error
    assert caught.value.code == code
    if fault.startswith("rate_limit"):
        assert isinstance(caught.value, RateLimited)
        wanted = {"rate_limit": 2.0, "rate_limit_fractional": 2.128, "rate_limit_bare": None}
        assert caught.value.retry_after == wanted[fault]
    if fault == "forbidden":
        assert isinstance(caught.value, InsufficientScope)
        assert caught.value.missing == {"Mail.Send", "Mail.ReadBasic", "User.Read"}
    assert sandbox.sent() == []


def test_a_cut_answer_is_outcome_unknown_and_found_once(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    provider.send(access, mime("other"), tag="other")
    sandbox.post("/faults", mailbox=USER, fault="drop_after_accept")
    with pytest.raises(OutcomeUnknown):
        provider.send(access, mime("cut-1"), tag="cut-1")
    [found, _other] = provider.find_sent(access, probe("cut-1"))
    matching = [m for m in sandbox.sent() if m["headers"][TAG_HEADER] == "cut-1"]
    assert [m["id"] for m in matching] == [found.provider_message_id]
    assert found.message_id_header == matching[0]["headers"]["Message-ID"]


def test_a_timeout_is_outcome_unknown_and_nothing_was_sent(sandbox: Sandbox) -> None:
    sandbox.post("/timeout", seconds=2)
    for provider in make_provider(sandbox, timeout=0.5):
        access = AccessToken(link(provider).tokens.access_token)
        sandbox.post("/faults", mailbox=USER, fault="timeout")
        with pytest.raises(OutcomeUnknown):
            provider.send(access, mime("slow-1"), tag="slow-1")
        assert provider.find_sent(access, probe("slow-1")) == []


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (400, {"code": "ErrorInvalidRecipients", "message": "bad"}, {}, RecipientRejected),
        (403, {"code": "ErrorSubmissionQuotaExceeded", "message": "q"}, {}, RateLimited),
        (429, {"code": "TooManyRequests", "message": "slow"}, {"Retry-After": "7"}, RateLimited),
        (400, {"code": "ErrorMimeContentInvalidBase64String", "message": "x"}, {}, ProviderError),
    ],
)
def test_graph_errors_the_sandbox_does_not_emulate(
    status: int, body: dict[str, str], headers: dict[str, str], error: type[ProviderError]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": body}, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        provider = MicrosoftProvider(
            client_id=CLIENT_ID, client_secret="s", endpoints=MicrosoftEndpoints(), http=http
        )
        with pytest.raises(ProviderError) as caught:
            provider.send(AccessToken("token"), mime("m-1"), tag="m-1")
    assert type(caught.value) is error
    assert caught.value.code == body["code"]
    if headers:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == 7


# --- reading --------------------------------------------------------------------------------


def test_inbound_reply_and_bounce_arrive_once(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    start = provider.list_inbound(access, None)
    assert start.messages == []
    sent = send_and_find(provider, access, "in-1")
    reply = sandbox.post("/reply", mailbox=USER, to_message_id=sent.message_id_header)
    bounce = sandbox.post("/bounce", mailbox=USER, to_message_id=sent.message_id_header)

    page = provider.list_inbound(access, start.cursor)
    assert [m.provider_message_id for m in page.messages] == [reply["id"], bounce["id"]]
    for message in page.messages:
        assert message.in_reply_to == sent.message_id_header
        assert message.thread_id == sent.thread_id
        assert sent.message_id_header in message.references
    answer, failure = page.messages
    assert answer.message_id_header == reply["message_id"]
    assert answer.from_address == RECIPIENT
    assert failure.headers["auto-submitted"] == "auto-replied"
    assert failure.headers["x-failed-recipients"] == RECIPIENT
    assert provider.list_inbound(access, page.cursor).messages == []


def test_inbound_in_the_same_second_is_neither_repeated_nor_skipped(
    sandbox: Sandbox, provider: MicrosoftProvider
) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    cursor = provider.list_inbound(access, None).cursor
    sent = send_and_find(provider, access, "in-2")
    seen: list[str] = []
    for _ in range(3):
        sandbox.post("/reply", mailbox=USER, to_message_id=sent.message_id_header)
        page = provider.list_inbound(access, cursor)
        seen += [m.provider_message_id for m in page.messages]
        assert len(page.messages) == 1
        cursor = page.cursor
    assert len(set(seen)) == 3
    stamp, _, ids = cursor.partition("|")
    assert stamp.endswith("Z")
    assert set(ids.split(",")) <= set(seen)


def test_paging_follows_next_links(sandbox: Sandbox, provider: MicrosoftProvider) -> None:
    access = AccessToken(link(provider).tokens.access_token)
    cursor = provider.list_inbound(access, None).cursor
    sent = send_and_find(provider, access, "in-3")
    for _ in range(120):
        sandbox.post("/reply", mailbox=USER, to_message_id=sent.message_id_header)
    page = provider.list_inbound(access, cursor)
    assert len({m.provider_message_id for m in page.messages}) == 120
    assert provider.find_sent(access, probe("in-3")) == [sent]


def test_a_bad_cursor_is_a_provider_error(provider: MicrosoftProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.list_inbound(AccessToken("token"), "12345")
    assert caught.value.code == "bad_cursor"


# --- admin consent --------------------------------------------------------------------------


def test_admin_consent_url(sandbox: Sandbox, provider: MicrosoftProvider) -> None:
    url = provider.admin_consent_url(redirect_uri=REDIRECT, state="st-1")
    assert url is not None
    parts = urlsplit(url)
    assert parts.path.endswith("/microsoft/organizations/v2.0/adminconsent")
    assert parse_qs(parts.query) == {
        "client_id": [CLIENT_ID],
        "scope": ["https://graph.microsoft.com/.default"],
        "redirect_uri": [REDIRECT],
        "state": ["st-1"],
    }
    answer = httpx.get(url)
    assert answer.status_code == 302
    assert query(answer.headers["location"])["admin_consent"] == "True"


def test_endpoints_for_a_tenant() -> None:
    real = MicrosoftEndpoints()
    assert real.authorize == "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    assert real.token == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert real.admin_consent == (
        "https://login.microsoftonline.com/organizations/v2.0/adminconsent"
    )
    tenant = MicrosoftEndpoints(tenant="contoso.onmicrosoft.com")
    assert tenant.admin_consent == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/adminconsent"
    )
    sandbox = MicrosoftEndpoints.sandbox("http://x/sandbox")
    assert sandbox.token == "http://x/sandbox/microsoft/common/oauth2/v2.0/token"
    assert sandbox.graph == "http://x/sandbox/microsoft/graph/v1.0"
