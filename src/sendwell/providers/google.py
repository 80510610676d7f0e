"""Google: OAuth 2.0 with PKCE, OpenID userinfo and the Gmail API, on the documented endpoints."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sendwell.providers import oauth
from sendwell.providers.base import (
    SENT_CLOCK_SLACK,
    TAG_HEADER,
    Grant,
    Identity,
    InboundMessage,
    InboundPage,
    Permission,
    ProviderName,
    SentMessage,
    SentProbe,
    TokenSet,
)
from sendwell.providers.credentials import Credential, bearer_of
from sendwell.providers.errors import (
    AdminApprovalRequired,
    AuthRevoked,
    ConsentDeclined,
    InsufficientScope,
    ProviderError,
    RateLimited,
    RecipientRejected,
    Transient,
)
from sendwell.providers.http import call, json_body, retry_after_seconds

SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
PERMISSIONS = (
    Permission(
        SEND_SCOPE,
        "Send email on your behalf",
        "Campaign emails go out from your own Gmail account, so replies reach you.",
    ),
    Permission(
        METADATA_SCOPE,
        "View your email message metadata such as labels and headers",
        "Sendwell reads headers (never bodies) to find its sent messages, thread "
        "follow-ups, and stop a sequence when a recipient replies or a message bounces.",
    ),
    Permission(
        "openid",
        "Associate you with your personal info on Google",
        "Identifies the account so a reconnect restores the same mailbox.",
    ),
    Permission(
        "email",
        "See your primary Google Account email address",
        "Shows which address is connected.",
    ),
)
REQUIRED_SCOPES = frozenset({SEND_SCOPE, METADATA_SCOPE})
INBOUND_HEADERS = (
    "From",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "X-MS-Exchange-Inbox-Rules-Loop",
    "X-MS-Exchange-Generated-Message-Source",
    "Precedence",
    "X-Failed-Recipients",
    "Content-Type",
)
RATE_REASONS = frozenset(
    {
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "dailyLimitExceeded",
        "quotaExceeded",
        "concurrentLimitExceeded",
    }
)
RETRY_AT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT[\d:.]+Z)")
# How many of the newest inbox messages are read when the history cursor is too old.
RESYNC_LIMIT = 100


class HistoryExpired(ProviderError):
    """history.list answered 404: the start id is older than Gmail keeps (a full sync is due)."""


class MessageGone(ProviderError):
    """messages.get answered 404: the message was deleted after it was listed."""


@dataclass(frozen=True)
class GoogleEndpoints:
    authorize: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    revoke: str = "https://oauth2.googleapis.com/revoke"
    userinfo: str = "https://openidconnect.googleapis.com/v1/userinfo"
    gmail: str = "https://gmail.googleapis.com/gmail/v1/users/me"

    @classmethod
    def sandbox(cls, base: str) -> GoogleEndpoints:
        return cls(
            authorize=f"{base}/google/o/oauth2/v2/auth",
            token=f"{base}/google/token",
            revoke=f"{base}/google/revoke",
            userinfo=f"{base}/google/v1/userinfo",
            gmail=f"{base}/google/gmail/v1/users/me",
        )


class GoogleProvider:
    """Gmail and Google Workspace mailboxes."""

    name = ProviderName.GOOGLE
    permissions: tuple[Permission, ...] = PERMISSIONS
    # Gmail has no per-minute message limit of its own (its quota answers 429 with a time),
    # and its copy in Sent exists when messages.send answers.
    min_send_interval = timedelta(0)
    sent_copy_lag = timedelta(0)
    sent_copies_by_tag = True

    def __init__(
        self, *, client_id: str, client_secret: str, endpoints: GoogleEndpoints, http: httpx.Client
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.endpoints = endpoints
        self.http = http

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str
    ) -> str:
        return oauth.authorization_url(
            self.endpoints.authorize,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scopes=[p.scope for p in PERMISSIONS],
            state=state,
            code_verifier=code_verifier,
            access_type="offline",
            prompt="consent",
            include_granted_scopes="true",
            login_hint=login_hint,
        )

    def complete_authorization(
        self, *, callback_params: dict[str, str], redirect_uri: str, code_verifier: str
    ) -> Grant:
        error = callback_params.get("error")
        if error == "access_denied":
            raise ConsentDeclined("You cancelled on Google's page.", code=error)
        if error:
            raise ProviderError(f"Google refused the request ({error}).", code=error)
        code = callback_params.get("code")
        if not code:
            raise ProviderError("Google's answer had no authorization code.", code="no_code")
        tokens = self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        missing = REQUIRED_SCOPES - tokens.scopes
        if missing:
            raise InsufficientScope(
                "Not every permission was granted.", missing=missing, code="scope_not_granted"
            )
        if tokens.refresh_token is None:
            raise ProviderError("Google returned no refresh token.", code="no_refresh_token")
        return Grant(tokens=tokens, identity=self._identity(tokens.access_token))

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str) -> bool:
        response = call(
            self.http,
            "POST",
            self.endpoints.revoke,
            provider="Google",
            idempotent=True,
            data={"token": token},
        )
        if response.status_code == 200 or json_body(response).get("error") == "invalid_token":
            return True
        raise Transient(
            f"Google could not revoke the grant (HTTP {response.status_code}).",
            code=str(response.status_code),
        )

    def send(
        self, credential: Credential, mime: bytes, *, tag: str, thread_id: str | None = None
    ) -> SentMessage:
        access_token = bearer_of(credential, self.name.label)
        payload: dict[str, str] = {"raw": base64.urlsafe_b64encode(mime).decode()}
        if thread_id:
            payload["threadId"] = thread_id
        response = call(
            self.http,
            "POST",
            f"{self.endpoints.gmail}/messages/send",
            provider="Google",
            idempotent=False,
            json=payload,
            headers=_bearer(access_token),
        )
        body = self._checked(response)
        message_id, thread = str(body.get("id", "")), str(body.get("threadId", ""))
        try:
            headers = self._headers_of(access_token, message_id, ("Message-ID",))
        except ProviderError:
            # The message went out; never let the read-back turn that into a failure (a retry
            # would send it twice). The Message-ID is learnt later from the Sent folder.
            headers = {}
        return SentMessage(message_id, thread, headers.get("message-id", ""))

    def find_sent(self, credential: Credential, probe: SentProbe) -> list[SentMessage]:
        """The Sent message carrying our tag, looked for back to the claim (newest first).

        Gmail keeps the headers of the message as sent, and gmail.metadata reads them.
        """
        access_token = bearer_of(credential, self.name.label)
        oldest = probe.since - SENT_CLOCK_SLACK
        params = {"labelIds": "SENT", "maxResults": "50"}
        while True:
            listing = self._get(access_token, "/messages", params)
            for item in listing.get("messages", []):
                try:
                    body, headers = self._metadata(
                        access_token, item["id"], (TAG_HEADER, "Message-ID")
                    )
                except MessageGone:
                    continue
                if headers.get(TAG_HEADER.lower()) == probe.tag:
                    return [
                        SentMessage(item["id"], item["threadId"], headers.get("message-id", ""))
                    ]
                if _internal_date(body) < oldest:
                    return []  # newest first: everything since the claim was looked at
            if not listing.get("nextPageToken"):
                return []
            params["pageToken"] = str(listing["nextPageToken"])

    def list_inbound(self, credential: Credential, cursor: str | None) -> InboundPage:
        access_token = bearer_of(credential, self.name.label)
        if cursor is None:
            profile = self._get(access_token, "/profile", {})
            return InboundPage([], str(profile["historyId"]))
        added: list[dict[str, str]] = []
        params = {"startHistoryId": cursor, "historyTypes": "messageAdded", "labelId": "INBOX"}
        while True:
            try:
                page = self._get(access_token, "/history", params)
            except HistoryExpired:
                return self._resync_inbox(access_token)
            for record in page.get("history", []):
                added += [entry["message"] for entry in record.get("messagesAdded", [])]
            if not page.get("nextPageToken"):
                break
            params["pageToken"] = str(page["nextPageToken"])
        return InboundPage(
            self._inbound_all(access_token, added), str(page.get("historyId", cursor))
        )

    def _resync_inbox(self, access_token: str) -> InboundPage:
        """A history id too old to list from: read the newest inbox messages, start afresh.

        Messages may be reported again; the caller handles each message id once.
        """
        profile = self._get(access_token, "/profile", {})
        listing = self._get(
            access_token, "/messages", {"labelIds": "INBOX", "maxResults": str(RESYNC_LIMIT)}
        )
        items = list(reversed(listing.get("messages", [])))
        return InboundPage(self._inbound_all(access_token, items), str(profile["historyId"]))

    def _inbound_all(self, access_token: str, items: list[dict[str, str]]) -> list[InboundMessage]:
        """Each listed message's metadata, skipping those deleted since they were listed.

        A history record outlives its message: messages.get then answers 404, and that
        message can no longer be read, so it is passed over rather than failing the page.
        """
        messages = []
        for item in items:
            try:
                messages.append(self._inbound(access_token, item["id"]))
            except MessageGone:
                continue
        return messages

    def probe(self, credential: Credential) -> None:
        access_token = bearer_of(credential, self.name.label)
        self._get(access_token, "/profile", {})

    def admin_consent_url(self, *, redirect_uri: str, state: str) -> str | None:
        return None

    def _token_request(self, form: dict[str, str]) -> TokenSet:
        form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        response = call(
            self.http, "POST", self.endpoints.token, provider="Google", idempotent=True, data=form
        )
        body = json_body(response)
        if response.status_code == 200:
            return oauth.token_set(body, provider="Google")
        raise _token_error(response, body)

    def _identity(self, access_token: str) -> Identity:
        response = call(
            self.http,
            "GET",
            self.endpoints.userinfo,
            provider="Google",
            idempotent=True,
            headers=_bearer(access_token),
        )
        body = self._checked(response)
        return Identity(
            subject=str(body["sub"]),
            email=str(body["email"]).lower(),
            display_name=str(body.get("name", "")),
        )

    def _get(
        self, access_token: str, path: str, params: dict[str, str] | list[tuple[str, str]]
    ) -> dict[str, Any]:
        response = call(
            self.http,
            "GET",
            f"{self.endpoints.gmail}{path}",
            provider="Google",
            idempotent=True,
            params=params,
            headers=_bearer(access_token),
        )
        return self._checked(response)

    def _metadata(
        self, access_token: str, message_id: str, names: tuple[str, ...]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A message's metadata resource and the named headers (lower-cased names)."""
        body = self._get(
            access_token,
            f"/messages/{message_id}",
            [("format", "metadata"), *(("metadataHeaders", n) for n in names)],
        )
        headers = body.get("payload", {}).get("headers", [])
        return body, {h["name"].lower(): h["value"] for h in headers}

    def _headers_of(
        self, access_token: str, message_id: str, names: tuple[str, ...]
    ) -> dict[str, str]:
        return self._metadata(access_token, message_id, names)[1]

    def _inbound(self, access_token: str, message_id: str) -> InboundMessage:
        body, headers = self._metadata(access_token, message_id, INBOUND_HEADERS)
        return InboundMessage(
            provider_message_id=body["id"],
            thread_id=body["threadId"],
            message_id_header=headers.get("message-id", ""),
            from_address=headers.get("from", ""),
            subject=headers.get("subject", ""),
            received_at=datetime.fromtimestamp(int(body["internalDate"]) / 1000, UTC),
            in_reply_to=headers.get("in-reply-to", ""),
            references=tuple(headers.get("references", "").split()),
            headers=headers,
            # The Message resource's "snippet: A short part of the message text"
            # (https://developers.google.com/gmail/api/reference/rest/v1/users.messages);
            # absent or empty when the host gives none for the metadata format.
            snippet=str(body.get("snippet") or ""),
        )

    def _checked(self, response: httpx.Response) -> dict[str, Any]:
        if response.is_success:
            return json_body(response)
        raise _api_error(response)


def _internal_date(body: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(body["internalDate"]) / 1000, UTC)


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def _token_error(response: httpx.Response, body: dict[str, Any]) -> ProviderError:
    """Google's token endpoint errors (RFC 6749 section 5.2) as our types."""
    error = str(body.get("error", ""))
    description = str(body.get("error_description", ""))
    if error == "invalid_grant":
        return AuthRevoked(f"Google says the grant is no longer valid: {description}", code=error)
    if response.status_code == 429:
        return RateLimited(
            "Google is limiting token requests.",
            retry_after=retry_after_seconds(response),
            code="429",
        )
    if response.status_code >= 500:
        return Transient(
            f"Google's token service failed (HTTP {response.status_code}).",
            code=str(response.status_code),
        )
    return ProviderError(
        f"Google refused the token request: {error} {description}".strip(),
        code=error or str(response.status_code),
    )


def _api_error(response: httpx.Response) -> ProviderError:
    """A Google API error body ({"error": {"code", "message", "errors": [...]}}) as our type."""
    error = json_body(response).get("error", {})
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message", ""))
    reasons = {
        str(item.get("reason")) for item in error.get("errors", []) if isinstance(item, dict)
    }
    details = {str(d.get("reason")) for d in error.get("details", []) if isinstance(d, dict)}
    status = response.status_code
    code = next(iter(sorted(reasons)), str(status))
    if status == 401:
        return AuthRevoked(
            "Google no longer accepts Sendwell's access for this mailbox.", code="authError"
        )
    if reasons & RATE_REASONS or status == 429:
        return RateLimited(
            f"Gmail is limiting sends: {message}",
            code=code,
            retry_after=_retry_after(response, message),
        )
    if "insufficientPermissions" in reasons or "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in details:
        return InsufficientScope(
            "The grant lacks a permission Sendwell needs.",
            missing=REQUIRED_SCOPES,
            code="insufficientPermissions",
        )
    if "domainPolicy" in reasons:
        return AdminApprovalRequired(
            f"The Google Workspace administrator has not allowed Sendwell: {message}",
            code="domainPolicy",
        )
    if status == 404 and "/history" in str(response.request.url):
        return HistoryExpired("The mailbox history cursor is too old.", code="notFound")
    if status == 404 and "/messages/" in str(response.request.url):
        return MessageGone("The message no longer exists.", code="notFound")
    if "failedPrecondition" in reasons or "Mail service not enabled" in message:
        return AuthRevoked(f"Gmail is not enabled for this account: {message}", code=code)
    if status >= 500:
        return Transient(f"Gmail failed (HTTP {status}): {message}", code=code)
    if status == 400 and ("recipient" in message.lower() or "to header" in message.lower()):
        return RecipientRejected(f"Gmail refused the recipient: {message}", code=code)
    return ProviderError(f"Gmail refused the request (HTTP {status}): {message}", code=code)


def _retry_after(response: httpx.Response, message: str) -> float | None:
    """Gmail puts the time in the message text ("Retry after <ISO time>"), not a header."""
    header = retry_after_seconds(response)
    if header is not None:
        return header
    match = RETRY_AT.search(message)
    if not match:
        return None
    moment = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
