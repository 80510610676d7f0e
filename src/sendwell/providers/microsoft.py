"""Microsoft: identity platform v2 (authorization code + PKCE) and Microsoft Graph mail."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from sendwell.providers import oauth
from sendwell.providers.base import (
    SENT_CLOCK_SLACK,
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
    SendingBlocked,
    Transient,
)
from sendwell.providers.http import call, json_body, retry_after_seconds

GRAPH_PREFIX = "https://graph.microsoft.com/"
PERMISSIONS = (
    Permission(
        "Mail.Send",
        "Send mail as you",
        "Campaign emails go out from your own Outlook mailbox, so replies reach you.",
    ),
    Permission(
        "Mail.ReadBasic",
        "Read basic mail in your mailbox (never message bodies or attachments)",
        "Sendwell reads headers to find its sent messages, thread follow-ups, and stop a "
        "sequence when a recipient replies or a message bounces.",
    ),
    Permission(
        "User.Read",
        "Sign you in and read your profile",
        "Identifies the mailbox and its address so a reconnect restores the same mailbox.",
    ),
    Permission(
        "offline_access",
        "Maintain access to data you have given it access to",
        "Lets scheduled campaign steps send while you are not signed in to Sendwell.",
    ),
    Permission("openid", "Sign you in", "Confirms who signed in when the mailbox is connected."),
)
# The order the authorization request lists them in (short Graph form).
SCOPE = "offline_access Mail.Send Mail.ReadBasic User.Read openid"
REQUIRED_SCOPES = frozenset({"Mail.Send", "Mail.ReadBasic", "User.Read"})
# AADSTS codes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
REVOKED_CODES = frozenset(
    {"AADSTS70008", "AADSTS700082", "AADSTS700084", "AADSTS50173", "AADSTS50076", "AADSTS50079"}
)
ADMIN_CODES = frozenset({"AADSTS65001", "AADSTS90093", "AADSTS90094", "AADSTS90095"})
DECLINED_CODE = "AADSTS65004"
AADSTS = re.compile(r"AADSTS\d+")
THROTTLE_CODES = frozenset({"ApplicationThrottled", "TooManyRequests", "MailboxConcurrency"})
# The mailbox's owner must act before it can send again: its storage is full
# (ErrorQuotaExceeded), or it is over a sending limit its organisation set
# (ErrorExceededMessageLimit). Retrying cannot help, so sending from it stops.
BLOCKED_CODES = frozenset({"ErrorQuotaExceeded", "ErrorExceededMessageLimit"})
# Exchange's rolling daily recipient limit: sending resumes by itself within a day.
SUBMISSION_QUOTA_CODE = "ErrorSubmissionQuotaExceeded"
SUBMISSION_QUOTA_WAIT = 3600.0
# Exchange Online: 30 messages a minute per mailbox; over it, "any excess in message
# submission will be throttled and successively carried over to the following minutes".
EXCHANGE_SEND_INTERVAL = timedelta(seconds=2)
SENT_COPY_LAG = timedelta(minutes=10)
SENT_SELECT = "id,conversationId,internetMessageId,subject,toRecipients,sentDateTime"
# webLink: "The URL to open the message in Outlook on the web"
# (https://learn.microsoft.com/graph/api/resources/message). bodyPreview is not asked for:
# Mail.ReadBasic reads everything "except for body, bodyPreview, uniqueBody, attachments"
# (https://learn.microsoft.com/en-us/answers/questions/283657/), so replies from Microsoft
# accounts have no snippet.
INBOX_SELECT = (
    "id,conversationId,internetMessageId,internetMessageHeaders,subject,from,receivedDateTime,"
    "webLink"
)


@dataclass(frozen=True)
class MicrosoftEndpoints:
    login: str = "https://login.microsoftonline.com"
    graph: str = "https://graph.microsoft.com/v1.0"
    tenant: str = "common"

    @property
    def authorize(self) -> str:
        return f"{self.login}/{self.tenant}/oauth2/v2.0/authorize"

    @property
    def token(self) -> str:
        return f"{self.login}/{self.tenant}/oauth2/v2.0/token"

    @property
    def admin_consent(self) -> str:
        # "Do not use 'common'": admin consent needs a tenant id or 'organizations'
        # (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent).
        tenant = "organizations" if self.tenant in ("common", "consumers") else self.tenant
        return f"{self.login}/{tenant}/v2.0/adminconsent"

    @classmethod
    def sandbox(cls, base: str, tenant: str = "common") -> MicrosoftEndpoints:
        return cls(login=f"{base}/microsoft", graph=f"{base}/microsoft/graph/v1.0", tenant=tenant)


class MicrosoftProvider:
    """Outlook.com and Microsoft 365 mailboxes."""

    name = ProviderName.MICROSOFT
    permissions: tuple[Permission, ...] = PERMISSIONS
    # The copy reaches Sent Items after transport, normally within seconds; messages over
    # Exchange's per-minute rate are carried over to later minutes. Not documented as a
    # bound: a margin that sending at or under that rate keeps well clear of.
    sent_copies_by_tag = False

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        endpoints: MicrosoftEndpoints,
        http: httpx.Client,
        min_send_interval: timedelta = EXCHANGE_SEND_INTERVAL,
        sent_copy_lag: timedelta = SENT_COPY_LAG,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.endpoints = endpoints
        self.http = http
        self.min_send_interval = min_send_interval
        self.sent_copy_lag = sent_copy_lag

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str
    ) -> str:
        return oauth.authorization_url(
            self.endpoints.authorize,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scopes=SCOPE.split(),
            state=state,
            code_verifier=code_verifier,
            response_mode="query",
            prompt="select_account",
            login_hint=login_hint,
        )

    def complete_authorization(
        self, *, callback_params: dict[str, str], redirect_uri: str, code_verifier: str
    ) -> Grant:
        if callback_params.get("error"):
            raise _callback_error(callback_params)
        code = callback_params.get("code")
        if not code:
            raise ProviderError("Microsoft's answer had no authorization code.", code="no_code")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        tokens = self._token_request({**form, "code_verifier": code_verifier})
        granted = {s.lower().removeprefix(GRAPH_PREFIX) for s in tokens.scopes}
        missing = frozenset(s for s in REQUIRED_SCOPES if s.lower() not in granted)
        if missing:
            raise InsufficientScope(
                "Not every permission was granted.", missing=missing, code="scope_not_granted"
            )
        if tokens.refresh_token is None:
            raise ProviderError("Microsoft returned no refresh token.", code="no_refresh_token")
        return Grant(tokens=tokens, identity=self._identity(tokens.access_token))

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens; Microsoft rotates the refresh token on every use, so store the new one."""
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str) -> bool:
        """Always False: the identity platform has no endpoint to revoke one app's grant.

        Graph's revokeSignInSessions needs User.RevokeSessions.All and signs the user out of
        every app; the user or an admin removes Sendwell at myapps.microsoft.com instead.
        """
        return False

    def send(
        self, credential: Credential, mime: bytes, *, tag: str, thread_id: str | None = None
    ) -> SentMessage:
        """Send through /me/sendMail (MIME form); a 202 means accepted, and nothing more.

        Graph answers before transport has run and returns no id: the copy in Sent Items
        appears later, so its ids are learnt afterwards through ``find_sent`` (empty here).
        ``thread_id`` is ignored: Outlook threads a message by its In-Reply-To and References
        headers and its subject.
        """
        access_token = bearer_of(credential, self.name.label)
        headers = {**_bearer(access_token), "Content-Type": "text/plain"}
        url = f"{self.endpoints.graph}/me/sendMail"
        response = self._call(
            "POST", url, idempotent=False, content=base64.b64encode(mime), headers=headers
        )
        if not response.is_success:
            raise _api_error(response)
        return SentMessage("", "", "")

    def find_sent(self, credential: Credential, probe: SentProbe) -> list[SentMessage]:
        """Copies in Sent Items to the probe's recipient with its subject, sent since it.

        Graph's copies in Sent Items carry no internetMessageHeaders, so our tag cannot be
        read back: the copy is recognised by recipient, subject and sentDateTime, which
        Mail.ReadBasic documents.
        """
        access_token = bearer_of(credential, self.name.label)
        params = {
            "$filter": f"sentDateTime ge {_iso(probe.since - SENT_CLOCK_SLACK)}",
            "$orderby": "sentDateTime desc",
            "$select": SENT_SELECT,
            "$top": "50",
        }
        recipient, subject = probe.recipient.lower(), same_subject(probe.subject)
        return [
            SentMessage(
                str(item["id"]),
                str(item.get("conversationId", "")),
                str(item.get("internetMessageId", "")),
            )
            for item in self._messages(access_token, "sentitems", params)
            if recipient in _recipients(item) and same_subject(str(item.get("subject"))) == subject
        ]

    def list_inbound(self, credential: Credential, cursor: str | None) -> InboundPage:
        """Inbox messages since the cursor "<second>|<ids delivered at that second>".

        receivedDateTime has whole seconds, so the cursor's second is read again with ``ge``
        and the ids already delivered at it are skipped: nothing twice, nothing missed.
        """
        access_token = bearer_of(credential, self.name.label)
        if cursor is None:
            return InboundPage([], _cursor(datetime.now(UTC).replace(microsecond=0), set()))
        since, delivered = _parse_cursor(cursor)
        params = {"$filter": f"receivedDateTime ge {_iso(since)}", "$select": INBOX_SELECT}
        params |= {"$orderby": "receivedDateTime asc", "$top": "100"}
        messages: list[InboundMessage] = []
        last, at_last = since, set(delivered)
        for item in self._messages(access_token, "inbox", params):
            message = _inbound(item)
            received, item_id = message.received_at, message.provider_message_id
            if received < since or (received == since and item_id in delivered):
                continue
            messages.append(message)
            if received > last:
                last, at_last = received, set()
            if received == last:
                at_last.add(item_id)
        return InboundPage(messages, _cursor(last, at_last))

    def probe(self, credential: Credential) -> None:
        access_token = bearer_of(credential, self.name.label)
        self._get(access_token, f"{self.endpoints.graph}/me", None)

    def admin_consent_url(self, *, redirect_uri: str, state: str) -> str | None:
        scope = GRAPH_PREFIX + ".default"
        query = {"client_id": self.client_id, "scope": scope, "redirect_uri": redirect_uri}
        return f"{self.endpoints.admin_consent}?{urlencode({**query, 'state': state})}"

    def _token_request(self, form: dict[str, str]) -> TokenSet:
        form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        response = self._call("POST", self.endpoints.token, data={**form, "scope": SCOPE})
        body = json_body(response)
        if response.status_code == 200:
            return oauth.token_set(body, provider="Microsoft")
        raise _token_error(response, body)

    def _identity(self, access_token: str) -> Identity:
        body = self._get(access_token, f"{self.endpoints.graph}/me", None)
        email = body.get("mail") or body.get("userPrincipalName") or ""
        return Identity(
            subject=str(body["id"]),
            email=str(email).lower(),
            display_name=str(body.get("displayName") or ""),
        )

    def _get(self, access_token: str, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        response = self._call("GET", url, params=params, headers=_bearer(access_token))
        if response.is_success:
            return json_body(response)
        raise _api_error(response)

    def _call(
        self, method: str, url: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        return call(self.http, method, url, provider="Microsoft", idempotent=idempotent, **kwargs)

    def _messages(
        self, access_token: str, folder: str, params: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        """A folder's messages, following @odata.nextLink (which carries the query) page by page."""
        url: str | None = f"{self.endpoints.graph}/me/mailFolders/{folder}/messages"
        query: dict[str, str] | None = params
        while url:
            page = self._get(access_token, url, query)
            yield from (item for item in page.get("value", []) if isinstance(item, dict))
            url, query = page.get("@odata.nextLink"), None


def same_subject(subject: str) -> str:
    """A subject as compared with a Sent copy's: white space folded, case ignored."""
    return " ".join(subject.split()).casefold()


def _recipients(item: dict[str, Any]) -> set[str]:
    found = item.get("toRecipients") or []
    return {
        str((entry.get("emailAddress") or {}).get("address", "")).lower()
        for entry in found
        if isinstance(entry, dict)
    }


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(moment: datetime, ids: set[str]) -> str:
    return f"{_iso(moment)}|{','.join(sorted(ids))}"


def _parse_cursor(cursor: str) -> tuple[datetime, frozenset[str]]:
    stamp, _, ids = cursor.partition("|")
    try:
        moment = datetime.fromisoformat(stamp).astimezone(UTC)
    except ValueError as error:
        raise ProviderError("Not a Microsoft inbox cursor.", code="bad_cursor") from error
    return moment, frozenset(filter(None, ids.split(",")))


def _headers(item: dict[str, Any]) -> dict[str, str]:
    headers = item.get("internetMessageHeaders") or []
    return {str(h["name"]).lower(): str(h["value"]) for h in headers if isinstance(h, dict)}


def _inbound(item: dict[str, Any]) -> InboundMessage:
    headers = _headers(item)
    sender = ((item.get("from") or {}).get("emailAddress") or {}).get("address", "")
    received = datetime.fromisoformat(str(item["receivedDateTime"])).astimezone(UTC)
    return InboundMessage(
        provider_message_id=str(item["id"]),
        thread_id=str(item.get("conversationId", "")),
        message_id_header=str(item.get("internetMessageId") or headers.get("message-id", "")),
        from_address=headers.get("from") or str(sender),
        subject=str(item.get("subject") or headers.get("subject", "")),
        received_at=received.replace(microsecond=0),
        in_reply_to=headers.get("in-reply-to", ""),
        references=tuple(headers.get("references", "").split()),
        headers=headers,
        web_link=str(item.get("webLink") or ""),
    )


def _callback_error(params: dict[str, str]) -> ProviderError:
    """The redirect's error (access_denied, consent_required, ...) as our type."""
    error, description = params["error"], params.get("error_description", "")
    match = AADSTS.search(description)
    code = match.group(0) if match else error
    declined = params.get("error_subcode") == "cancel" or code == DECLINED_CODE
    if code in ADMIN_CODES or (error == "consent_required" and not declined):
        return AdminApprovalRequired("An administrator must approve Sendwell first.", code=code)
    if declined:
        return ConsentDeclined("You cancelled on Microsoft's page.", code=code)
    return ProviderError(f"Microsoft refused the request ({error}): {description}", code=code)


def _token_error(response: httpx.Response, body: dict[str, Any]) -> ProviderError:
    """Token endpoint errors ({"error", "error_description", "error_codes"}) as our types."""
    error = str(body.get("error", ""))
    description = re.split(r"\r?\n| Trace ID:", str(body.get("error_description", "")))[0]
    codes, match = body.get("error_codes"), AADSTS.match(description)
    number = codes[0] if isinstance(codes, list) and codes else None
    code = f"AADSTS{number}" if number else (match.group(0) if match else "")
    status = response.status_code
    if code in ADMIN_CODES or error == "consent_required":
        return AdminApprovalRequired(f"Admin approval needed: {description}", code=code or error)
    if code in REVOKED_CODES or error in ("interaction_required", "invalid_grant"):
        return AuthRevoked(f"Sign in to Microsoft again: {description}", code=code or error)
    if status == 429:
        retry_after = retry_after_seconds(response)
        return RateLimited("Microsoft limits token requests.", retry_after=retry_after, code="429")
    if status >= 500:
        return Transient(f"Microsoft's token service failed (HTTP {status}).", code=str(status))
    return ProviderError(
        f"Microsoft refused the token request: {error} {description}".strip(),
        code=code or error or str(status),
    )


def _api_error(response: httpx.Response) -> ProviderError:
    """A Graph error body ({"error": {"code", "message"}}) as our type."""
    error = json_body(response).get("error", {})
    error = error if isinstance(error, dict) else {}
    status = response.status_code
    code = str(error.get("code") or status)
    message = str(error.get("message", ""))
    retry_after = retry_after_seconds(response)
    if status == 401 or code == "InvalidAuthenticationToken":
        return AuthRevoked("Microsoft no longer accepts Sendwell's access.", code=code)
    if code in BLOCKED_CODES:
        return SendingBlocked(f"Outlook refuses to send from this mailbox: {message}", code=code)
    if code == SUBMISSION_QUOTA_CODE:
        wait = retry_after or SUBMISSION_QUOTA_WAIT
        return RateLimited(f"Outlook's daily sending limit: {message}", retry_after=wait, code=code)
    if status == 429 or code in THROTTLE_CODES:
        return RateLimited(f"Outlook is limiting: {message}", retry_after=retry_after, code=code)
    if code == "ErrorAccessDenied":
        missing = REQUIRED_SCOPES
        return InsufficientScope(
            "A permission Sendwell needs is missing.", missing=missing, code=code
        )
    if code == "MailboxNotEnabledForRESTAPI":
        return AuthRevoked(f"This mailbox cannot be used through Graph: {message}", code=code)
    if code == "ErrorInvalidRecipients":
        return RecipientRejected(f"Outlook refused the recipient: {message}", code=code)
    if status >= 500:
        return Transient(
            f"Graph failed (HTTP {status}): {message}",
            code=code,
            retry_after=retry_after_seconds(response),
        )
    return ProviderError(f"Graph refused the request (HTTP {status}): {message}", code=code)
