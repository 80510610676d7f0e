"""The emulated sign-in and consent pages both providers share, with their own wording."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sendwell.sandbox.state import PendingSignIn, ProviderKind, SandboxState, provider_for

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

PERMISSION_WORDS = {
    "https://www.googleapis.com/auth/gmail.send": "Send email on your behalf",
    "https://www.googleapis.com/auth/gmail.metadata": (
        "View your email message metadata such as labels and headers, but not the email body"
    ),
    "openid": "Associate you with your personal info on Google",
    "email": "See your primary Google Account email address",
    "Mail.Send": "Send mail as you",
    "Mail.ReadBasic": "Read basic mail in your mailbox (not the message bodies)",
    "User.Read": "Sign you in and read your profile",
    "offline_access": "Maintain access to data you have given it access to",
}
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


def error_page(request: Request, provider: ProviderKind, code: str, detail: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"brand": BRAND[provider], "code": code, "detail": detail},
        status_code=400,
    )


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
        return templates.TemplateResponse(
            request,
            "consent.html",
            {
                "brand": BRAND[pending.provider],
                "pending": pending,
                "mailbox": mailbox,
                "permissions": [
                    (scope, PERMISSION_WORDS.get(scope, scope)) for scope in pending.scopes
                ],
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
        granted = frozenset(s for s in pending.scopes if s in scope)
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
