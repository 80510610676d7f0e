"""Pages: first account, sign in, sign out, and the user's own account with API tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from sendwell.accounts import service
from sendwell.accounts.auth import (
    SESSION_COOKIE,
    clear_session_cookie,
    current_user,
    is_local_path,
    optional_user,
    set_session_cookie,
)
from sendwell.config import Settings
from sendwell.kit.errors import SendwellError, TooManyAttempts
from sendwell.mailboxes.capabilities import server_capabilities
from sendwell.models import User
from sendwell.web.deps import client_ip, get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter()

HOME = "/messaging/campaigns"


@router.get("/")
def home(
    db: Session = Depends(get_db, scope="function"), user: User | None = Depends(optional_user)
) -> Response:
    if service.needs_first_account(db):
        return RedirectResponse("/setup", status_code=303)
    return RedirectResponse(HOME if user else "/sign-in", status_code=303)


@router.get("/setup")
def setup_page(request: Request, db: Session = Depends(get_db, scope="function")) -> Response:
    if not service.needs_first_account(db):
        return RedirectResponse("/sign-in", status_code=303)
    return _setup_form(request, {})


@router.post("/setup")
def setup(
    request: Request,
    email: str = Form(""),
    name: str = Form(""),
    workspace_name: str = Form(""),
    password: str = Form(""),
    setup_token: str = Form(""),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
) -> Response:
    form = {"email": email, "name": name, "workspace_name": workspace_name}
    try:
        user = service.create_first_account(
            db,
            email=email,
            password=password,
            name=name,
            workspace_name=workspace_name,
            required_token=_setup_token(request),
            given_token=setup_token,
        )
    except SendwellError as error:
        return _setup_form(request, form, error=error.message, status_code=error.status_code)
    response = redirect_with_flash(request, HOME, f"Welcome to Sendwell, {user.display_name}.")
    _open_session(db, user, settings, response)
    return response


def _setup_form(
    request: Request, form: dict[str, str], *, error: str = "", status_code: int = 200
) -> Response:
    """The first-account form, with what this server can do and how to change it."""
    capabilities = server_capabilities(get_settings(request), get_services(request))
    return render(
        request,
        "accounts/setup.html",
        {
            "form": form,
            "error": error,
            "token_needed": _setup_token(request),
            "capabilities": capabilities,
        },
        status_code=status_code,
    )


def _setup_token(request: Request) -> str:
    """The setup token this server asks for ("" when it is reached on loopback only)."""
    return str(getattr(request.app.state, "setup_token", ""))


@router.get("/sign-in")
def sign_in_page(
    request: Request,
    next: str = "",
    db: Session = Depends(get_db, scope="function"),
    user: User | None = Depends(optional_user),
) -> Response:
    if service.needs_first_account(db):
        return RedirectResponse("/setup", status_code=303)
    if user is not None:
        return RedirectResponse(next if is_local_path(next) else HOME, status_code=303)
    return render(request, "accounts/sign_in.html", {"form": {}, "next": next})


@router.post("/sign-in")
def sign_in(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
) -> Response:
    policy = service.SignInPolicy(
        max_failures=settings.sign_in_max_failures,
        window=timedelta(minutes=settings.sign_in_lockout_minutes),
    )
    try:
        user = service.sign_in(
            db, email=email, password=password, client_ip=client_ip(request), policy=policy
        )
    except SendwellError as error:
        response = render(
            request,
            "accounts/sign_in.html",
            {"form": {"email": email}, "next": next, "error": error.message},
            status_code=error.status_code,
        )
        if isinstance(error, TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response
    redirect = RedirectResponse(next if is_local_path(next) else HOME, status_code=303)
    _open_session(db, user, settings, redirect)
    return redirect


@router.post("/sign-out")
def sign_out(request: Request, db: Session = Depends(get_db, scope="function")) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        service.end_session(db, secret)
    response = redirect_with_flash(request, "/sign-in", "You are signed out.")
    clear_session_cookie(response)
    return response


@router.get("/account")
def account_page(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return render(request, "accounts/account.html", {"tokens": service.list_api_tokens(db, user)})


@router.post("/account/profile")
def save_profile(
    request: Request,
    name: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        service.rename(db, user, name)
    except SendwellError as error:
        return _account_page(request, db, user, profile_error=error.message, status=error)
    return redirect_with_flash(request, "/account", "Your name is saved.")


@router.post("/account/password")
def change_password(
    request: Request,
    current_password: str = Form(""),
    new_password: str = Form(""),
    revoke_tokens: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        service.change_own_password(
            db,
            user,
            current_password=current_password,
            new_password=new_password,
            revoke_tokens=revoke_tokens == "on",
            keep_session=request.cookies.get(SESSION_COOKIE),
        )
    except SendwellError as error:
        return _account_page(request, db, user, password_error=error.message, status=error)
    tokens = " Your API tokens were revoked." if revoke_tokens == "on" else ""
    return redirect_with_flash(
        request,
        "/account",
        f"Your password is changed. Every other browser was signed out.{tokens}",
    )


def _account_page(
    request: Request,
    db: Session,
    user: User,
    *,
    status: SendwellError,
    profile_error: str = "",
    password_error: str = "",
) -> Response:
    return render(
        request,
        "accounts/account.html",
        {
            "tokens": service.list_api_tokens(db, user),
            "profile_error": profile_error,
            "password_error": password_error,
        },
        status_code=status.status_code,
    )


@router.post("/account/tokens")
def create_token(
    request: Request,
    name: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        token, plaintext = service.create_api_token(db, user, name)
    except SendwellError as error:
        return render(
            request,
            "accounts/account.html",
            {
                "tokens": service.list_api_tokens(db, user),
                "error": error.message,
                "token_name": name,
            },
            status_code=error.status_code,
        )
    return render(
        request,
        "accounts/account.html",
        {
            "tokens": service.list_api_tokens(db, user),
            "new_token": plaintext,
            "new_token_name": token.name,
        },
        status_code=201,
    )


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    token_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.revoke_api_token(db, user, token_id)
    return redirect_with_flash(request, "/account", "The API token was revoked.")


def _open_session(db: Session, user: User, settings: Settings, response: Response) -> None:
    secret = service.start_session(db, user, timedelta(days=settings.session_days))
    set_session_cookie(response, secret, settings)
