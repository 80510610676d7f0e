"""Emulated Google: OAuth 2.0 endpoints, OpenID userinfo and the Gmail API subset we use."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasicCredentials

from sendwell.sandbox import signin
from sendwell.sandbox.clients import basic_auth, check_secret, presented
from sendwell.sandbox.common import (
    bearer_token,
    hold_like_a_timeout,
    next_fault,
    normalized_subject,
    parse_mime,
    take_time_to_answer,
    thread_for_reply,
)
from sendwell.sandbox.responses import CutResponse, google_api_error
from sendwell.sandbox.state import (
    ACCESS_TOKEN_SECONDS,
    RegisteredClient,
    SandboxState,
    StoredMessage,
    Token,
)

SEND = "https://www.googleapis.com/auth/gmail.send"
METADATA = "https://www.googleapis.com/auth/gmail.metadata"
READ_SCOPES = frozenset(
    {METADATA, "https://www.googleapis.com/auth/gmail.readonly", "https://mail.google.com/"}
)
SEND_SCOPES = frozenset(
    {SEND, "https://www.googleapis.com/auth/gmail.compose", "https://mail.google.com/"}
)
OLDEST_HISTORY_ID = 1000
GMAIL_SCOPES = frozenset(
    {METADATA, SEND, "https://www.googleapis.com/auth/gmail.readonly", "https://mail.google.com/"}
    | {
        f"https://www.googleapis.com/auth/gmail.{name}"
        for name in ("compose", "insert", "labels", "modify", "settings.basic")
    }
)
# Refresh-token lifetimes (https://developers.google.com/identity/protocols/oauth2#expiration).
TESTING_REFRESH_LIFETIME = timedelta(days=7)
UNUSED_REFRESH_LIMIT = timedelta(days=183)  # "six months"
LIVE_REFRESH_TOKENS_PER_CLIENT = 100
TOKEN_ERRORS = {
    "invalid_grant": (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    ),
    "invalid_client": (401, {"error": "invalid_client", "error_description": "Unauthorized"}),
}
CLIENT_NOT_FOUND = {
    "error": "invalid_client",
    "error_description": "The OAuth client was not found.",
}


def unauthenticated() -> JSONResponse:
    return google_api_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        "UNAUTHENTICATED",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def insufficient_scope() -> JSONResponse:
    return google_api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        "PERMISSION_DENIED",
        extra={
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "gmail.googleapis.com",
                        "method": "caribou.api.proto.MailboxService",
                    },
                }
            ]
        },
    )


def rate_limited() -> JSONResponse:
    retry_at = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return google_api_error(
        429,
        f"User-rate limit exceeded.  Retry after {retry_at}",
        "rateLimitExceeded",
        "RESOURCE_EXHAUSTED",
        domain="usageLimits",
    )


def fault_response(fault: str) -> Response | None:
    """The documented answer for a queued fault (timeout and drop are handled by the caller)."""
    if fault == "rate_limit":
        return rate_limited()
    if fault == "server_error":
        return google_api_error(500, "Backend Error", "backendError", "INTERNAL")
    if fault == "unauthorized":
        return unauthenticated()
    if fault == "forbidden":
        return insufficient_scope()
    if fault == "quota_exceeded":
        return google_api_error(
            429,
            "User-rate limit exceeded.  Retry after 2030-01-01T00:00:00.000Z",
            "userRateLimitExceeded",
            "RESOURCE_EXHAUSTED",
            domain="usageLimits",
        )
    if fault == "mailbox_not_enabled":
        return google_api_error(
            400, "Mail service not enabled", "failedPrecondition", "FAILED_PRECONDITION"
        )
    return None


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def metadata_resource(message: StoredMessage, headers: list[str] | None) -> dict[str, Any]:
    wanted = {name.lower() for name in headers or []}
    shown = [
        {"name": key, "value": value}
        for key, value in message.headers
        if not wanted or key.lower() in wanted
    ]
    return {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": ["SENT"] if message.folder == "sent" else ["INBOX", "UNREAD"],
        "snippet": "",
        "historyId": str(message.history_id),
        "internalDate": str(int(message.at.timestamp() * 1000)),
        "payload": {"partId": "", "mimeType": "text/plain", "filename": "", "headers": shown},
        "sizeEstimate": 512,
    }


def build_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/google")

    @router.get("/o/oauth2/v2/auth")
    def authorize(
        request: Request,
        params: signin.AuthorizationParams = Depends(signin.authorization_params),
    ) -> Response:
        return signin.begin(request, state, "google", params)

    @router.post("/token")
    def token(
        grant_type: str = Form(""),
        code: str = Form(""),
        redirect_uri: str = Form(""),
        code_verifier: str = Form(""),
        refresh_token: str = Form(""),
        client_id: str = Form(""),
        client_secret: str = Form(""),
        basic: HTTPBasicCredentials | None = Depends(basic_auth),
    ) -> JSONResponse:
        client_id, client_secret = presented(basic, client_id, client_secret)
        client = state.client("google", client_id)
        checked = check_secret(client, client_secret, state.now())
        if client is None:
            return JSONResponse(CLIENT_NOT_FOUND, 401)
        if checked != "ok":
            return JSONResponse(TOKEN_ERRORS["invalid_client"][1], 401)
        if grant_type == "authorization_code":
            return exchange_code(code, redirect_uri, code_verifier, client)
        if grant_type == "refresh_token":
            return refresh(refresh_token, client)
        return JSONResponse(
            {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type: " + grant_type,
            },
            400,
        )

    def exchange_code(
        code: str, redirect_uri: str, verifier: str, client: RegisteredClient
    ) -> JSONResponse:
        stored = state.spend_code(code)
        if stored is None or stored.grant.client_id != client.client_id:
            return JSONResponse({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        if stored.redirect_uri != redirect_uri:
            return JSONResponse(
                {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}, 400
            )
        if not verifier:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Missing code verifier."}, 400
            )
        if not pkce_matches(verifier, stored.code_challenge):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Invalid code verifier."}, 400
            )
        testing = client.publishing_status == "testing"
        lasting = not testing or stored.grant.scopes <= signin.GOOGLE_SIGN_IN_SCOPES
        access, refresh_token = state.issue_tokens(
            stored.grant,
            with_refresh=True,
            refresh_lifetime=None if lasting else TESTING_REFRESH_LIFETIME,
        )
        assert refresh_token is not None
        end_refresh_tokens_over_the_cap(client.client_id, stored.grant.address)
        return JSONResponse(
            {
                "access_token": access.value,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "refresh_token": refresh_token.value,
                "scope": " ".join(sorted(stored.grant.scopes)),
                "token_type": "Bearer",
            }
        )

    def end_refresh_tokens_over_the_cap(client_id: str, address: str) -> None:
        """Past the cap, the oldest live refresh token stops working, without warning."""
        live = state.live_refresh_tokens(client_id, address)
        for oldest in live[: max(0, len(live) - LIVE_REFRESH_TOKENS_PER_CLIENT)]:
            oldest.revoked = True

    def usable_refresh_token(value: str, client: RegisteredClient) -> Token | None:
        token = state.live_token(value, "refresh")
        if token is None or token.grant.client_id != client.client_id:
            return None
        if state.now() - token.last_used_at >= UNUSED_REFRESH_LIMIT:
            return None
        return token

    def refresh(value: str, client: RegisteredClient) -> JSONResponse:
        token = usable_refresh_token(value, client)
        if token is not None:
            mailbox = state.mailbox(token.grant.address)
            with state.lock:
                queued = mailbox.token_errors.popleft() if mailbox.token_errors else None
            if queued in TOKEN_ERRORS:
                status, body = TOKEN_ERRORS[queued]
                return JSONResponse(body, status)
        if token is None:
            status, body = TOKEN_ERRORS["invalid_grant"]
            return JSONResponse(body, status)
        token.last_used_at = state.now()
        access, _ = state.issue_tokens(token.grant, with_refresh=False)
        return JSONResponse(
            {
                "access_token": access.value,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "scope": " ".join(sorted(token.grant.scopes)),
                "token_type": "Bearer",
            }
        )

    @router.post("/revoke")
    def revoke(token: str = Form("")) -> JSONResponse:
        with state.lock:
            found = state.tokens.get(token)
        if found is None or state.live_token(token, found.kind) is None:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Token expired or revoked"}, 400
            )
        # "Revocation removes all OAuth 2.0 scopes previously granted to a project,
        # invalidating any issued access or refresh tokens for all clients registered under
        # that project" (https://developers.google.com/identity/protocols/oauth2/web-server).
        state.revoke_all(found.grant.address, project_clients(found.grant.client_id))
        return JSONResponse({})

    def project_clients(client_id: str) -> frozenset[str]:
        client = state.client("google", client_id)
        project = client.project if client is not None else client_id
        with state.lock:
            same = {
                c.client_id
                for c in state.clients.values()
                if c.provider == "google" and c.project == project
            }
        return frozenset(same | {client_id})

    @router.get("/v1/userinfo")
    def userinfo(request: Request) -> JSONResponse:
        token = bearer_token(request, state)
        if token is None:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Invalid Credentials"}, 401
            )
        mailbox = state.mailbox(token.grant.address)
        return JSONResponse(
            {
                "sub": mailbox.subject,
                "email": mailbox.address,
                "email_verified": True,
                "name": mailbox.display_name,
            }
        )

    gmail = "/gmail/v1/users/me"

    @router.post(gmail + "/messages/send")
    async def send(request: Request) -> Response:
        token = bearer_token(request, state)
        if token is None:
            return unauthenticated()
        if not token.grant.scopes & SEND_SCOPES:
            return insufficient_scope()
        mailbox = state.mailbox(token.grant.address)
        try:
            body = await request.json()
            raw = base64.urlsafe_b64decode(str(body.get("raw", "")) + "==")
        except (ValueError, binascii.Error, AttributeError):
            return google_api_error(
                400, "Invalid value for ByteString: raw", "invalidArgument", "INVALID_ARGUMENT"
            )
        if not raw:
            return google_api_error(
                400, "Recipient address required", "invalidArgument", "INVALID_ARGUMENT"
            )
        fault = next_fault(state, mailbox, sending=True)
        if fault == "timeout":
            await hold_like_a_timeout(state)
            return google_api_error(
                503, "The service is currently unavailable.", "backendError", "UNAVAILABLE"
            )
        if fault and (answer := fault_response(fault)) is not None:
            return answer
        parsed = parse_mime(raw)
        if not parsed.get("To"):
            return google_api_error(400, "Invalid To header", "invalidArgument", "INVALID_ARGUMENT")
        await take_time_to_answer(mailbox)
        stored = store_sent(parsed, str(body.get("threadId") or ""), mailbox)
        if fault == "quota_bounce":
            limit_bounce(mailbox, stored)
        answer_body = {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]}
        if fault == "drop_after_accept":
            return CutResponse(bytes(JSONResponse(answer_body).body))
        return JSONResponse(answer_body)

    def store_sent(parsed: Any, requested_thread: str, mailbox: Any) -> StoredMessage:
        """Gmail's threading: the requested thread only when headers and subject agree."""
        earlier = thread_for_reply(state, mailbox, parsed)
        thread_id = secrets.token_hex(8)
        if (
            requested_thread
            and earlier is not None
            and earlier.thread_id == requested_thread
            and normalized_subject(earlier.subject)
            == normalized_subject(str(parsed.get("Subject", "")))
        ):
            thread_id = requested_thread
        del parsed["Message-ID"]
        message_id = f"<CA+sbx{secrets.token_hex(12)}@mail.gmail.com>"
        parsed["Message-ID"] = message_id
        return state.store(
            mailbox,
            parsed,
            folder="sent",
            thread_id=thread_id,
            message_id=message_id,
            sender=mailbox.address,
        )

    def limit_bounce(mailbox: Any, stored: StoredMessage) -> None:
        """Over the sending limit, Gmail may still answer 200 and bounce the message minutes
        later: "You can't assume that a 200 response means the email was successfully sent"
        (Gmail API, Handle errors). The bounce names no failed recipient."""
        stored.delivered = False
        notice = Message()
        notice["From"] = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
        notice["To"] = mailbox.address
        notice["Subject"] = "Delivery Status Notification (Failure)"
        notice["In-Reply-To"] = stored.message_id
        notice["References"] = stored.message_id
        notice["Auto-Submitted"] = "auto-replied"
        notice["Content-Type"] = 'multipart/report; report-type=delivery-status; boundary="b"'
        message_id = f"<{secrets.token_hex(10)}@mx.google.com>"
        notice["Message-ID"] = message_id
        state.store(
            mailbox,
            notice,
            folder="inbox",
            thread_id=stored.thread_id,
            message_id=message_id,
            sender="mailer-daemon@googlemail.com",
        )

    def reader(request: Request) -> tuple[Any, Response | None]:
        token = bearer_token(request, state)
        if token is None:
            return None, unauthenticated()
        if not token.grant.scopes & READ_SCOPES:
            return None, insufficient_scope()
        mailbox = state.mailbox(token.grant.address)
        fault = next_fault(state, mailbox, sending=False)
        if fault and (answer := fault_response(fault)) is not None:
            return None, answer
        return mailbox, None

    @router.get(gmail + "/messages")
    def list_messages(
        request: Request,
        labelIds: list[str] = Query(default_factory=list),
        maxResults: int = 100,
        pageToken: str = "",
        q: str = "",
    ) -> Response:
        mailbox, problem = reader(request)
        if problem is not None:
            return problem
        if q:
            return google_api_error(
                403,
                "Metadata scope does not support 'q' parameter",
                "forbidden",
                "PERMISSION_DENIED",
            )
        folders = {"SENT": "sent", "INBOX": "inbox"}
        wanted = {folders[label] for label in labelIds if label in folders}
        moment = state.now()
        with state.lock:
            messages = [
                m
                for m in reversed(mailbox.messages)
                if (not wanted or m.folder in wanted) and m.visible(moment)
            ]
        start = int(pageToken or 0)
        page = messages[start : start + max(1, min(maxResults, 500))]
        body: dict[str, Any] = {"resultSizeEstimate": len(messages)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + len(page) < len(messages):
            body["nextPageToken"] = str(start + len(page))
        return JSONResponse(body)

    @router.get(gmail + "/messages/{message_id}")
    def get_message(
        request: Request,
        message_id: str,
        format: str = "metadata",
        metadataHeaders: list[str] = Query(default_factory=list),
    ) -> Response:
        mailbox, problem = reader(request)
        if problem is not None:
            return problem
        if format not in ("metadata", "minimal"):
            return google_api_error(
                403,
                f"Metadata scope doesn't allow format {format.upper()}",
                "forbidden",
                "PERMISSION_DENIED",
            )
        found = next((m for m in mailbox.messages if m.id == message_id), None)
        if found is None or not found.visible(state.now()):
            return google_api_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        return JSONResponse(metadata_resource(found, metadataHeaders))

    @router.get(gmail + "/history")
    def history(
        request: Request,
        startHistoryId: int = 0,
        labelId: str = "",
        historyTypes: list[str] = Query(default_factory=list),
        maxResults: int = 100,
        pageToken: str = "",
    ) -> Response:
        mailbox, problem = reader(request)
        if problem is not None:
            return problem
        if startHistoryId < OLDEST_HISTORY_ID:
            return google_api_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        folder = {"SENT": "sent", "INBOX": "inbox"}.get(labelId)
        shown = mailbox.shown_history_id(state.now())
        records = [
            {
                "id": str(m.history_id),
                "messages": [{"id": m.id, "threadId": m.thread_id}],
                "messagesAdded": [
                    {
                        "message": {
                            "id": m.id,
                            "threadId": m.thread_id,
                            "labelIds": ["SENT"] if m.folder == "sent" else ["INBOX", "UNREAD"],
                        }
                    }
                ],
            }
            for m in mailbox.messages
            if m.history_id > startHistoryId
            and (folder is None or m.folder == folder)
            and m.history_id <= shown
        ]
        # Pages of maxResults records (default 100, at most 500), as users.history.list pages.
        start = int(pageToken or 0)
        size = max(1, min(maxResults, 500))
        body: dict[str, Any] = {"historyId": str(shown)}
        if records[start : start + size]:
            body["history"] = records[start : start + size]
        if start + size < len(records):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    @router.get(gmail + "/profile")
    def profile(request: Request) -> Response:
        mailbox, problem = reader(request)
        if problem is not None:
            return problem
        return JSONResponse(
            {
                "emailAddress": mailbox.address,
                "messagesTotal": len(mailbox.messages),
                "threadsTotal": len({m.thread_id for m in mailbox.messages}),
                "historyId": str(mailbox.shown_history_id(state.now())),
            }
        )

    return router
