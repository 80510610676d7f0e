"""Emulated Microsoft: identity platform v2 endpoints and the Microsoft Graph mail subset."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.message import Message
from email.utils import getaddresses
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBasicCredentials

from sendwell.sandbox import signin
from sendwell.sandbox.clients import SecretCheck, basic_auth, check_secret, presented
from sendwell.sandbox.common import (
    bearer_token,
    hold_like_a_timeout,
    next_fault,
    parse_mime,
    take_time_to_answer,
    thread_for_reply,
)
from sendwell.sandbox.google import pkce_matches
from sendwell.sandbox.responses import CutResponse, graph_error
from sendwell.sandbox.state import (
    ACCESS_TOKEN_SECONDS,
    Mailbox,
    RegisteredClient,
    SandboxState,
    StoredMessage,
    Token,
)

GRAPH_PREFIX = "https://graph.microsoft.com/"
# Entra ID error texts, as the token endpoint returns them (AADSTS code, HTTP status, error).
AADSTS = {
    "AADSTS70008": (
        "invalid_grant",
        "The provided authorization code or refresh token has "
        "expired due to inactivity. Send a new interactive authorization request "
        "for this user and resource.",
    ),
    "AADSTS700082": (
        "invalid_grant",
        "The refresh token has expired due to inactivity. The "
        "token was issued on {issued} and was inactive for 90.00:00:00.",
    ),
    "AADSTS50173": (
        "invalid_grant",
        "The provided grant has expired due to it being revoked, "
        "a fresh auth token is needed. The user might have changed or reset their "
        "password.",
    ),
    "AADSTS50076": (
        "interaction_required",
        "Due to a configuration change made by your "
        "administrator, or because you moved to a new location, you must use "
        "multi-factor authentication to access 'Sendwell'.",
    ),
    "AADSTS50079": (
        "interaction_required",
        "Due to a configuration change made by your "
        "administrator, or because you moved to a new location, you must enroll in "
        "multi-factor authentication to access 'Sendwell'.",
    ),
    "AADSTS65001": (
        "invalid_grant",
        "The user or administrator has not consented to use the "
        "application with ID 'sendwell-sandbox'. Send an interactive authorization "
        "request for this user and resource.",
    ),
    "AADSTS90093": (
        "invalid_grant",
        "Graph returned 403 Forbidden: the calling principal does "
        "not have the required permissions; an administrator must grant them.",
    ),
    "AADSTS90094": ("invalid_grant", "The grant requires admin permission."),
}
# How the token endpoint refuses the client itself (HTTP status, AADSTS code, error, text).
CLIENT_ERRORS: dict[SecretCheck, tuple[int, str, str, str]] = {
    "unknown": (
        400,
        "AADSTS700016",
        "unauthorized_client",
        "Application with identifier '{client}' was not found in the directory. This can "
        "happen if the application has not been installed by the administrator of the tenant "
        "or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
    ),
    "missing": (
        401,
        "AADSTS7000218",
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    ),
    "wrong": (
        401,
        "AADSTS7000215",
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app '{client}'.",
    ),
    "expired": (
        401,
        "AADSTS7000222",
        "invalid_client",
        "The provided client secret keys for app '{client}' are expired. Visit the Azure "
        "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
        "using certificate credentials for added security: https://aka.ms/certCreds.",
    ),
}
# Refresh tokens unused this long expire (https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
INACTIVE_REFRESH_LIMIT = timedelta(days=90)


def token_error(
    code: str,
    *,
    now: datetime,
    issued: datetime | None = None,
    status: int = 400,
    error: str = "",
    text: str = "",
) -> JSONResponse:
    """A token endpoint error in the identity platform's shape."""
    if not text:
        error, text = AADSTS[code]
    text = text.replace("{issued}", (issued or now).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace = secrets.token_hex(16)
    return JSONResponse(
        {
            "error": error,
            "error_description": f"{code}: {text} Trace ID: {trace} Correlation ID: {trace} "
            f"Timestamp: {stamp}",
            "error_codes": [int(code.removeprefix("AADSTS"))],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": f"https://login.microsoftonline.com/error?code={code.removeprefix('AADSTS')}",
        },
        status_code=status,
    )


def client_error(check: SecretCheck, client_id: str, now: datetime) -> JSONResponse:
    status, code, error, text = CLIENT_ERRORS[check]
    return token_error(
        code, now=now, status=status, error=error, text=text.replace("{client}", client_id)
    )


def unauthenticated() -> JSONResponse:
    return graph_error(
        401,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
        headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
    )


def access_denied() -> JSONResponse:
    return graph_error(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def throttled(retry_after: str | None = "2") -> JSONResponse:
    """Graph's 429 for a mailbox over its limits; Retry-After may be fractional or absent."""
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return graph_error(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        headers=headers,
    )


def too_many_requests(retry_after: str | None) -> JSONResponse:
    """The throttling guide's own 429 (code TooManyRequests)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return graph_error(429, "TooManyRequests", "Please retry again later.", headers=headers)


def fault_response(fault: str) -> Response | None:
    if fault == "rate_limit":
        return throttled("2")
    if fault == "rate_limit_fractional":
        return too_many_requests("2.128")
    if fault == "rate_limit_bare":
        return too_many_requests(None)
    if fault == "server_error":
        return graph_error(
            503, "ServiceUnavailable", "Service Unavailable", headers={"Retry-After": "1"}
        )
    if fault == "unauthorized":
        return unauthenticated()
    if fault == "forbidden":
        return access_denied()
    if fault == "mailbox_not_enabled":
        return graph_error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    if fault == "quota_exceeded":
        return graph_error(
            403,
            "ErrorExceededMessageLimit",
            "Cannot send mail. Daily Message/Recipient limit exceeded. Follow the instructions "
            "in your Inbox to verify your account.",
        )
    if fault == "mailbox_full":
        return graph_error(
            403, "ErrorQuotaExceeded", "The process failed to get the correct properties."
        )
    return None


def submission_quota_exceeded() -> JSONResponse:
    """Over Exchange Online's rolling daily recipient limit."""
    return graph_error(
        429,
        "ErrorSubmissionQuotaExceeded",
        "Cannot send message. The user has exceeded the submission quota.",
    )


def recipients_of(parsed: Message) -> list[str]:
    return [value for key, value in parsed.items() if key.lower() in ("to", "cc", "bcc")]


def short_scopes(scopes: frozenset[str]) -> frozenset[str]:
    return frozenset(scope.removeprefix(GRAPH_PREFIX) for scope in scopes)


def graph_message(message: StoredMessage, select: set[str]) -> dict[str, Any]:
    [(sender_name, sender_address)] = getaddresses([message.sender]) or [("", "")]
    full: dict[str, Any] = {
        "id": message.id,
        "conversationId": message.thread_id,
        "internetMessageId": message.message_id,
        "subject": message.subject,
        "sentDateTime": message.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "receivedDateTime": message.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "from": {
            "emailAddress": {"address": sender_address, "name": sender_name or sender_address}
        },
        "toRecipients": [
            {"emailAddress": {"name": name or address, "address": address}}
            for name, address in getaddresses(message.to)
        ],
    }
    # Graph's webLink form, as in the message resource's documented example:
    # https://outlook.office365.com/owa/?ItemID=<id>&exvsurl=1&viewmodel=ReadMessageItem
    full["webLink"] = (
        f"https://outlook.office365.com/owa/?ItemID={quote(message.id, safe='')}"
        "&exvsurl=1&viewmodel=ReadMessageItem"
    )
    if message.folder != "sent":
        # "internet headers just do not exist on the copy in Sent Items" (Graph docs
        # maintainer, microsoft-graph-docs issues 2716 and 12726).
        full["internetMessageHeaders"] = [{"name": k, "value": v} for k, v in message.headers]
    default = {key: value for key, value in full.items() if key != "internetMessageHeaders"}
    if not select:
        return default
    return {key: value for key, value in full.items() if key in select or key == "id"}


FILTER = re.compile(r"^(receivedDateTime|sentDateTime) (gt|ge) (\S+)$")
INEFFICIENT = "The restriction or sort order is too complex for this operation."


def build_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/microsoft")

    @router.get("/{tenant}/oauth2/v2.0/authorize", name="microsoft_authorize")
    def authorize(
        request: Request,
        tenant: str,
        params: signin.AuthorizationParams = Depends(signin.authorization_params),
    ) -> Response:
        return signin.begin(request, state, "microsoft", params)

    @router.get("/{tenant}/v2.0/adminconsent")
    def admin_consent(
        tenant: str,
        client_id: str = "",
        redirect_uri: str = "",
        state_: str = Query("", alias="state"),
        scope: str = "",
    ) -> Response:
        if not (client_id and redirect_uri and scope) or tenant == "common":
            # Admin consent needs an organisation: the real endpoint refuses /common.
            return JSONResponse({"error": "invalid_request"}, 400)
        query = urlencode(
            {"admin_consent": "True", "tenant": tenant, "state": state_, "scope": scope}
        )
        return RedirectResponse(f"{redirect_uri}?{query}", 302)

    @router.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration(request: Request, tenant: str) -> JSONResponse:
        """The tenant's OpenID Connect discovery document, which MSAL reads first."""
        authorize_url = str(request.url_for("microsoft_authorize", tenant=tenant))
        base = authorize_url.removesuffix(f"/{tenant}/oauth2/v2.0/authorize")
        issuer_tenant = "{tenantid}" if tenant in ("common", "organizations") else tenant
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "name",
                    "tid",
                    "ver",
                    "preferred_username",
                    "oid",
                    "email",
                ],
                "kerberos_endpoint": f"{base}/{tenant}/kerberos",
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    @router.post("/{tenant}/oauth2/v2.0/token")
    def token(
        tenant: str,
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
        client = state.client("microsoft", client_id)
        checked = check_secret(client, client_secret, state.now())
        if client is None or checked != "ok":
            return client_error(checked, client_id, state.now())
        if grant_type == "authorization_code":
            return exchange_code(code, redirect_uri, code_verifier, client)
        if grant_type == "refresh_token":
            return refresh(refresh_token, client)
        return JSONResponse(
            {
                "error": "unsupported_grant_type",
                "error_description": "AADSTS70003: The app requested an unsupported grant type.",
                "error_codes": [70003],
            },
            400,
        )

    def tokens_body(access: Token, refresh_value: str, scopes: frozenset[str]) -> JSONResponse:
        shown = sorted(s for s in short_scopes(scopes) if s not in ("offline_access",))
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": " ".join(shown),
                "expires_in": ACCESS_TOKEN_SECONDS,
                "ext_expires_in": ACCESS_TOKEN_SECONDS,
                "access_token": access.value,
                "refresh_token": refresh_value,
            }
        )

    def exchange_code(
        code: str, redirect_uri: str, verifier: str, client: RegisteredClient
    ) -> JSONResponse:
        stored = state.spend_code(code)
        if stored is None or stored.grant.client_id != client.client_id:
            return token_error("AADSTS70008", now=state.now())
        if stored.redirect_uri != redirect_uri:
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_codes": [500112],
                    "error_description": "AADSTS500112: The reply address does not match "
                    "the reply address provided when requesting the authorization code.",
                },
                400,
            )
        if not pkce_matches(verifier, stored.code_challenge):
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_codes": [501481],
                    "error_description": "AADSTS501481: The Code_Verifier does not "
                    "match the code_challenge supplied in the authorization "
                    "request.",
                },
                400,
            )
        access, refresh_token = state.issue_tokens(stored.grant, with_refresh=True)
        assert refresh_token is not None
        return tokens_body(access, refresh_token.value, stored.grant.scopes)

    def refresh(value: str, client: RegisteredClient) -> JSONResponse:
        now = state.now()
        with state.lock:
            known = state.tokens.get(value)
        token = state.live_token(value, "refresh")
        if token is None or token.grant.client_id != client.client_id:
            return token_error("AADSTS50173" if known else "AADSTS70008", now=now)
        if now - token.last_used_at >= INACTIVE_REFRESH_LIMIT:
            return token_error("AADSTS700082", now=now, issued=token.issued_at)
        mailbox = state.mailbox(token.grant.address)
        with state.lock:
            queued = mailbox.token_errors.popleft() if mailbox.token_errors else None
        if queued in AADSTS:
            return token_error(queued, now=now, issued=token.issued_at)
        # Each use hands out a fresh refresh token; the old one is not revoked.
        token.last_used_at = now
        access, rotated = state.issue_tokens(token.grant, with_refresh=True)
        assert rotated is not None
        return tokens_body(access, rotated.value, token.grant.scopes)

    graph = "/graph/v1.0/me"

    def caller(
        request: Request, needs: str, *, sending: bool = False
    ) -> tuple[Any, Response | None, str | None]:
        token = bearer_token(request, state)
        if token is None:
            return None, unauthenticated(), None
        if needs.lower() not in {scope.lower() for scope in short_scopes(token.grant.scopes)}:
            return None, access_denied(), None
        mailbox = state.mailbox(token.grant.address)
        fault = next_fault(state, mailbox, sending=sending)
        if fault and (answer := fault_response(fault)) is not None:
            return None, answer, None
        return mailbox, None, fault

    @router.get(graph)
    def me(request: Request) -> Response:
        mailbox, problem, _ = caller(request, "User.Read")
        if problem is not None:
            return problem
        return JSONResponse(
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "id": mailbox.subject,
                "displayName": mailbox.display_name,
                "mail": mailbox.address,
                "userPrincipalName": mailbox.address,
            }
        )

    @contextmanager
    def concurrency_slot(mailbox: Mailbox) -> Iterator[bool]:
        """One of the mailbox's concurrent request slots, or False when all are taken."""
        with state.lock:
            admitted = mailbox.in_flight < mailbox.settings.concurrent_requests
            if admitted:
                mailbox.in_flight += 1
        try:
            yield admitted
        finally:
            if admitted:
                with state.lock:
                    mailbox.in_flight -= 1

    @router.post(graph + "/sendMail")
    async def send_mail(request: Request) -> Response:
        mailbox, problem, fault = caller(request, "Mail.Send", sending=True)
        if problem is not None:
            return problem
        with concurrency_slot(mailbox) as admitted:
            if not admitted:
                return throttled("1")
            return await accept_mime(request, mailbox, fault)

    async def accept_mime(request: Request, mailbox: Mailbox, fault: str | None) -> Response:
        if not request.headers.get("content-type", "").startswith("text/plain"):
            return graph_error(
                400,
                "ErrorMimeContentInvalid",
                "Sendwell's sandbox accepts MIME sendMail only (text/plain).",
            )
        try:
            raw = base64.b64decode(await request.body(), validate=False)
        except (ValueError, binascii.Error):
            raw = b""
        parsed = parse_mime(raw) if raw else None
        if parsed is None or not parsed.get("To"):
            return graph_error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        if fault == "timeout":
            await hold_like_a_timeout(state)
            return graph_error(504, "GatewayTimeout", "Gateway Timeout")
        await take_time_to_answer(mailbox)
        moment = state.now()
        if recipients_today(mailbox, moment) + len(recipients_of(parsed)) > (
            mailbox.settings.recipients_per_day
        ):
            return submission_quota_exceeded()
        earlier = thread_for_reply(state, mailbox, parsed)
        thread_id = earlier.thread_id if earlier else "AAQk" + secrets.token_urlsafe(24)
        del parsed["Message-ID"]
        message_id = f"<{secrets.token_hex(16).upper()}@SN7PR11MB0000.namprd11.prod.outlook.com>"
        parsed["Message-ID"] = message_id
        if mailbox.settings.drop_custom_headers:
            for name in {key for key in parsed if key.lower().startswith("x-")}:
                del parsed[name]
        # The 202 comes before transport: the copy appears later, and later still when the
        # mailbox is over its per-minute rate (the excess is carried over, not refused).
        delay = mailbox.settings.sent_copy_delay + carried_over(mailbox, moment)
        state.store(
            mailbox,
            parsed,
            folder="sent",
            thread_id=thread_id,
            message_id=message_id,
            sender=mailbox.address,
            visible_at=moment + timedelta(seconds=delay),
        )
        if fault == "drop_after_accept":
            return CutResponse(b'{"status": "accepted", "detail": "response cut by sandbox"}')
        return Response(status_code=202)

    def recipients_today(mailbox: Mailbox, moment: datetime) -> int:
        with state.lock:
            return sum(
                len(m.to)
                for m in mailbox.messages
                if m.folder == "sent" and moment - m.at < timedelta(days=1)
            )

    def carried_over(mailbox: Mailbox, moment: datetime) -> float:
        """Seconds this message waits because the mailbox is over its per-minute rate."""
        limit = max(1, mailbox.settings.messages_per_minute)
        with state.lock:
            last_minute = sum(
                1
                for m in mailbox.messages
                if m.folder == "sent" and moment - m.at < timedelta(minutes=1)
            )
        return 60.0 * (last_minute // limit)

    @router.get(graph + "/mailFolders/{folder}/messages")
    def folder_messages(
        request: Request,
        folder: str,
        select: str = Query("", alias="$select"),
        filter_: str = Query("", alias="$filter"),
        orderby: str = Query("", alias="$orderby"),
        top: int = Query(10, alias="$top"),
        skip: int = Query(0, alias="$skip"),
    ) -> Response:
        mailbox, problem, _ = caller(request, "Mail.ReadBasic")
        if problem is not None:
            return problem
        with concurrency_slot(mailbox) as admitted:
            if not admitted:
                return throttled("1")
            return list_folder(request, mailbox, folder, (select, filter_, orderby), top, skip)

    def list_folder(
        request: Request,
        mailbox: Mailbox,
        folder: str,
        query: tuple[str, str, str],
        top: int,
        skip: int,
    ) -> Response:
        select, filter_, orderby = query
        kinds = {"sentitems": "sent", "inbox": "inbox"}
        if folder.lower() not in kinds:
            return graph_error(
                404, "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        moment = state.now()
        with state.lock:
            messages = [
                m
                for m in mailbox.messages
                if m.folder == kinds[folder.lower()] and m.visible(moment)
            ]
        order_field = orderby.strip().split(" ")[0] if orderby.strip() else ""
        if filter_:
            match = FILTER.match(filter_.strip())
            if not match:
                return graph_error(400, "BadRequest", f"Invalid filter clause: {filter_}")
            if order_field and order_field != match.group(1):
                # $orderby's properties must come first in $filter (List messages reference).
                return graph_error(400, "InefficientFilter", INEFFICIENT)
            since = datetime.fromisoformat(match.group(3).replace("Z", "+00:00"))
            keep_equal = match.group(2) == "ge"
            # Graph compares at the second precision it reports its date-times in.
            messages = [
                m
                for m in messages
                if (at := m.at.replace(microsecond=0)) > since or (keep_equal and at == since)
            ]
        descending = orderby.strip().lower().endswith("desc") or not orderby
        messages.sort(key=lambda m: m.at, reverse=descending)
        top = max(1, min(top, 1000))
        page = messages[skip : skip + top]
        fields = {name.strip() for name in select.split(",") if name.strip()}
        body: dict[str, Any] = {"value": [graph_message(m, fields) for m in page]}
        if skip + top < len(messages):
            items = request.query_params.multi_items()
            kept = [(k, v) for k, v in items if k != "$skip"] + [("$skip", str(skip + top))]
            body["@odata.nextLink"] = str(request.url.replace(query=urlencode(kept)))
        return JSONResponse(body)

    return router
