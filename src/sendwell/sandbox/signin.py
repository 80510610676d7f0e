"""The emulated sign-in and consent pages both providers share, with their own wording."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sendwell.sandbox.state import (
    PendingSignIn,
    ProviderKind,
    RegisteredClient,
    SandboxState,
    provider_for,
)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

GMAIL = "https://www.googleapis.com/auth/"
# Each host's own consent texts: Google's consent screen, and the userConsentDisplayName of
# Microsoft Graph's delegated permissions (Graph's servicePrincipal oauth2PermissionScopes).
PERMISSION_WORDS: dict[ProviderKind, dict[str, str]] = {
    "google": {
        GMAIL + "gmail.send": "Send email on your behalf",
        GMAIL + "gmail.metadata": (
            "View your email message metadata such as labels and headers, but not the email body"
        ),
        "openid": "Associate you with your personal info on Google",
        "email": "See your primary Google Account email address",
        GMAIL + "userinfo.email": "See your primary Google Account email address",
        "profile": "See your personal info, including any personal info you've made publicly "
        "available",
        GMAIL + "userinfo.profile": "See your personal info, including any personal info you've "
        "made publicly available",
    },
    "microsoft": {
        "Mail.Send": "Send mail as you",
        "Mail.ReadBasic": "Read user basic mail",
        "User.Read": "Sign you in and read your profile",
        "offline_access": "Maintain access to data you have given it access to",
        "openid": "Sign in as you",
        "profile": "View your basic profile",
        "email": "View your email address",
    },
}
# Google asks for the sign-in scopes as one block the user cannot untick; only the others are
# granular (https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions).
GOOGLE_SIGN_IN_SCOPES = frozenset(
    {"openid", "email", "profile", GMAIL + "userinfo.email", GMAIL + "userinfo.profile"}
)
GRAPH_PREFIX = "https://graph.microsoft.com/"
BRAND = {"google": "Google", "microsoft": "Microsoft"}
MS_DECLINED = "AADSTS65004: User declined to consent to access the app."
MS_ADMIN_REQUIRED = (
    "AADSTS90094: An administrator of Sendwell Sandbox Org has set a policy that prevents you "
    "from granting Sendwell the permissions it is requesting. Contact an administrator of "
    "Sendwell Sandbox Org, who can grant permissions to this app on your behalf."
)


@dataclass(frozen=True)
class AuthorizationParams:
    client_id: str
    redirect_uri: str
    response_type: str
    scope: str
    state: str
    code_challenge: str
    code_challenge_method: str
    login_hint: str


def authorization_params(
    client_id: str = "",
    redirect_uri: str = "",
    response_type: str = "",
    scope: str = "",
    state: str = Query(""),
    code_challenge: str = "",
    code_challenge_method: str = "",
    login_hint: str = "",
) -> AuthorizationParams:
    """The authorization request's query parameters (a FastAPI dependency)."""
    return AuthorizationParams(
        client_id,
        redirect_uri,
        response_type,
        scope,
        state,
        code_challenge,
        code_challenge_method,
        login_hint,
    )


def begin(
    request: Request, state: SandboxState, provider: ProviderKind, params: AuthorizationParams
) -> Response:
    """Validate an authorization request and show the provider's sign-in page."""
    missing = [
        name
        for name in ("client_id", "redirect_uri", "scope", "code_challenge")
        if not getattr(params, name)
    ]
    if missing or params.response_type != "code" or params.code_challenge_method != "S256":
        detail = (
            f"Required parameter is missing: {missing[0]}"
            if missing
            else "Invalid response_type or code_challenge_method (use code and S256)"
        )
        return error_page(request, provider, "invalid_request", detail)
    refused = client_refusal(request, state.client(provider, params.client_id), provider, params)
    if refused is not None:
        return refused
    pending = PendingSignIn(
        id=secrets.token_urlsafe(16),
        provider=provider,
        client_id=params.client_id,
        redirect_uri=params.redirect_uri,
        state=params.state,
        scopes=tuple(params.scope.split()),
        code_challenge=params.code_challenge,
        login_hint=params.login_hint,
    )
    with state.lock:
        state.pending[pending.id] = pending
    return sign_in_page(request, pending)


def sign_in_page(
    request: Request, pending: PendingSignIn, error: str = "", status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "sign_in.html",
        {
            "brand": BRAND[pending.provider],
            "pending": pending,
            "error": error,
            "email": pending.address or pending.login_hint,
        },
        status_code=status_code,
    )


def error_page(
    request: Request,
    provider: ProviderKind,
    code: str,
    detail: str,
    status_code: int = 400,
    heading: str = "Access blocked: authorization error",
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "brand": BRAND[provider],
            "heading": heading,
            "code_line": f"Error {status_code}: {code}" if provider == "google" else code,
            "detail": detail,
        },
        status_code=status_code,
    )


def client_refusal(
    request: Request,
    client: RegisteredClient | None,
    provider: ProviderKind,
    params: AuthorizationParams,
) -> HTMLResponse | None:
    """The host's error page for an unknown client or an unregistered redirect URI."""
    registered = client is not None and params.redirect_uri in client.redirect_uris
    if provider == "google":
        if client is None:
            return error_page(
                request, provider, "invalid_client", "The OAuth client was not found.", 401
            )
        if not registered:
            return error_page(
                request,
                provider,
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
                f"policy. Request details: redirect_uri={params.redirect_uri}",
                heading="Access blocked: This app's request is invalid",
            )
        return None
    trouble = "Sorry, but we're having trouble signing you in."
    if client is None:
        return error_page(
            request,
            provider,
            "AADSTS700016",
            f"AADSTS700016: Application with identifier '{params.client_id}' was not found in "
            "the directory. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may "
            "have sent your authentication request to the wrong tenant.",
            heading=trouble,
        )
    if not registered:
        return error_page(
            request,
            provider,
            "AADSTS50011",
            f"AADSTS50011: The redirect URI '{params.redirect_uri}' specified in the request "
            "does not match the redirect URIs configured for the application "
            f"'{params.client_id}'. Make sure the redirect URI sent in the request matches one "
            "added to your application in the Azure portal. Navigate to "
            "https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
            heading=trouble,
        )
    return None


def consent_lists(pending: PendingSignIn) -> tuple[list[tuple[str, str]], list[str]]:
    """The permissions the user may untick, and the identity block they cannot."""
    words = PERMISSION_WORDS[pending.provider]
    fixed = GOOGLE_SIGN_IN_SCOPES if pending.provider == "google" else frozenset()
    shown = [
        (scope, words.get(scope.removeprefix(GRAPH_PREFIX), scope))
        for scope in pending.scopes
        if scope not in fixed
    ]
    identity = list(dict.fromkeys(words[s] for s in pending.scopes if s in fixed))
    return shown, identity


def granted_scopes(pending: PendingSignIn, ticked: list[str]) -> frozenset[str]:
    """What the consent grants: the ticked permissions, and Google's sign-in block always."""
    fixed = GOOGLE_SIGN_IN_SCOPES if pending.provider == "google" else frozenset()
    return frozenset(s for s in pending.scopes if s in ticked or s in fixed)


def callback_url(pending: PendingSignIn, params: dict[str, str]) -> str:
    separator = "&" if "?" in pending.redirect_uri else "?"
    return pending.redirect_uri + separator + urlencode(params)


def declined_params(pending: PendingSignIn) -> dict[str, str]:
    if pending.provider == "google":
        return {"error": "access_denied", "state": pending.state}
    return {
        "error": "access_denied",
        "error_subcode": "cancel",
        "error_description": MS_DECLINED,
        "state": pending.state,
    }


def build_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    def take_pending(pending_id: str) -> PendingSignIn | None:
        with state.lock:
            return state.pending.get(pending_id)

    @router.post("/signin/{pending_id}", response_class=HTMLResponse)
    def sign_in(
        request: Request, pending_id: str, email: str = Form(""), password: str = Form("")
    ) -> Response:
        pending = take_pending(pending_id)
        if pending is None:
            return HTMLResponse("This sign-in request has expired. Start again.", 400)
        address = email.strip().lower()
        pending.address = address
        if provider_for(address) != pending.provider:
            return sign_in_page(
                request, pending, f"Couldn't find your {BRAND[pending.provider]} account.", 401
            )
        if not password:
            return sign_in_page(request, pending, "Enter your password.", 401)
        mailbox = state.mailbox(address)
        if pending.provider == "microsoft" and address.split("@")[0] == "needs-admin":
            back = callback_url(
                pending,
                {
                    "error": "access_denied",
                    "error_description": MS_ADMIN_REQUIRED,
                    "state": pending.state,
                },
            )
            return templates.TemplateResponse(
                request,
                "admin_approval.html",
                {"mailbox": mailbox, "back": back},
            )
        permissions, identity = consent_lists(pending)
        return templates.TemplateResponse(
            request,
            "consent.html",
            {
                "brand": BRAND[pending.provider],
                "pending": pending,
                "mailbox": mailbox,
                "permissions": permissions,
                "identity": identity,
            },
        )

    @router.post("/consent/{pending_id}")
    def consent(
        pending_id: str, action: str = Form(""), scope: list[str] = Form(default_factory=list)
    ) -> Response:
        with state.lock:
            pending = state.pending.pop(pending_id, None)
        if pending is None or not pending.address:
            return HTMLResponse("This sign-in request has expired. Start again.", 400)
        if action != "allow":
            return RedirectResponse(callback_url(pending, declined_params(pending)), 302)
        granted = granted_scopes(pending, scope)
        code = state.issue_code(pending, granted)
        params = {"code": code.code, "state": pending.state}
        if pending.provider == "google":
            params.update(
                {"scope": " ".join(sorted(granted)), "authuser": "0", "prompt": "consent"}
            )
        else:
            params["session_state"] = secrets.token_hex(16)
        return RedirectResponse(callback_url(pending, params), 302)

    return router
