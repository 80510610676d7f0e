"""Pages for IMAP/SMTP ("Other") accounts: the server settings form to link one, and the same
form to reauthenticate it with a new password."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.accounts.service import normalize_email
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes import server_accounts, service
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.web import SERVER_LINK, linked_page, load_alerts
from sendwell.models import User
from sendwell.providers.mail_server import AUTH_LABELS, SECURITY_LABELS
from sendwell.web.deps import get_db, get_services
from sendwell.web.pages import render

router = APIRouter(dependencies=[Depends(load_alerts)])


def _settings_in(
    email: str = Form(""),
    smtp_host: str = Form(""),
    smtp_port: str = Form(""),
    smtp_security: str = Form(""),
    imap_host: str = Form(""),
    imap_port: str = Form(""),
    imap_security: str = Form(""),
    username: str = Form(""),
    password: str = Form(""),
    auth_method: str = Form("password"),
) -> server_accounts.ServerSettingsIn:
    return server_accounts.ServerSettingsIn(
        email=email,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_security=smtp_security,
        imap_host=imap_host,
        imap_port=imap_port,
        imap_security=imap_security,
        username=username,
        password=password,
        auth_method=auth_method,
    )


@router.get(SERVER_LINK)
def server_link_page(
    request: Request, email: str = "", _user: User = Depends(current_user)
) -> Response:
    """The form, filled with the usual server names and ports for the address's domain."""
    return _server_form(request, server_accounts.suggested_settings(email), action=SERVER_LINK)


@router.post(SERVER_LINK)
def link_server(
    request: Request,
    form: server_accounts.ServerSettingsIn = Depends(_settings_in),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """Test both servers, then link; the form again, with the server's answer, if not."""
    try:
        address = normalize_email(form.email, allow_test_domains=services.sandbox)
        typed = dataclasses.replace(form, email=address)
        result = server_accounts.link_server_account(db, services, user=user, form=typed)
    except SendwellError as error:
        return _server_form(
            request,
            _shown(form),
            action=SERVER_LINK,
            error=error.message,
            status_code=error.status_code,
        )
    return linked_page(request, result)


@router.get("/mailboxes/{mailbox_id}/password")
def password_page(
    request: Request,
    mailbox_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """Reauthenticate: the account's stored settings, and the new password to enter."""
    shown = server_accounts.stored_settings(db, user, mailbox_id)
    return _server_form(request, shown, action=f"/mailboxes/{mailbox_id}/password", reauth=True)


@router.post("/mailboxes/{mailbox_id}/password")
def save_password(
    request: Request,
    mailbox_id: int,
    form: server_accounts.ServerSettingsIn = Depends(_settings_in),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    mailbox = service.get_mailbox(db, user, mailbox_id)
    typed = dataclasses.replace(form, email=mailbox.email)
    try:
        result = server_accounts.link_server_account(db, services, user=user, form=typed)
    except SendwellError as error:
        return _server_form(
            request,
            _shown(typed),
            action=f"/mailboxes/{mailbox_id}/password",
            reauth=True,
            error=error.message,
            status_code=error.status_code,
        )
    return linked_page(request, result)


def _server_form(
    request: Request,
    settings: server_accounts.ServerSettingsShown,
    *,
    action: str,
    reauth: bool = False,
    error: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "mailboxes/server_link.html",
        {
            "settings": settings,
            "action": action,
            "reauth": reauth,
            "error": error,
            "securities": [(k.value, label) for k, label in SECURITY_LABELS.items()],
            "auth_methods": [(k.value, label) for k, label in AUTH_LABELS.items()],
        },
        status_code=status_code,
    )


def _shown(form: server_accounts.ServerSettingsIn) -> server_accounts.ServerSettingsShown:
    """What the user typed, to show again after a failure (the password is never echoed)."""
    return server_accounts.ServerSettingsShown(
        email=form.email,
        smtp_host=form.smtp_host,
        smtp_port=_port_or_none(form.smtp_port),
        smtp_security=form.smtp_security,
        imap_host=form.imap_host,
        imap_port=_port_or_none(form.imap_port),
        imap_security=form.imap_security,
        username=form.username,
        auth_method=form.auth_method,
    )


def _port_or_none(raw: str) -> int | None:
    return int(raw) if raw.strip().isdigit() else None
