"""Pages: ask a teammate for their email account, review and approve, withdraw, resume."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import SESSION_COOKIE, current_user
from sendwell.accounts.service import normalize_email
from sendwell.config import Settings
from sendwell.delegations import service, views
from sendwell.dispatch import resuming
from sendwell.kit.errors import InvalidInput, SendwellError
from sendwell.mailboxes import service as mailboxes
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.web import SERVER_LINK, load_alerts
from sendwell.models import User
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter(dependencies=[Depends(load_alerts)])
SETTINGS_TAB = "/messaging/settings"


@router.post("/delegations")
def ask(
    request: Request,
    tasks: BackgroundTasks,
    teammate_id: str = Form(""),
    note: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
    services: ProviderServices = Depends(get_services),
) -> Response:
    try:
        if not teammate_id.strip().isdigit():
            raise InvalidInput("Choose a teammate from the list.", code="unknown_teammate")
        view = service.request(db, user, owner_id=int(teammate_id), note=note)
    except SendwellError as error:
        return redirect_with_flash(request, SETTINGS_TAB, error.message, kind="error")
    name = view.owner.display_name
    link = f"{settings.base_url}{view.link}"
    if services.mailer is not None:
        tasks.add_task(services.mailer, *service.request_email(view, settings.base_url))
        told = f"They were emailed a link to review it; it is also on their Settings tab: {link}"
    else:
        told = (
            "This server has no notification email: send them this link, or ask them to open "
            f"their Settings tab: {link}"
        )
    return redirect_with_flash(
        request, SETTINGS_TAB, f"{name} is asked to approve sending from their account. {told}"
    )


@router.get("/delegations/{delegation_id}")
def delegation_page(
    request: Request,
    delegation_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
) -> Response:
    return _page(request, db, user, delegation_id, settings)


@router.post("/delegations/{delegation_id}/link")
def link_for_approval(
    request: Request,
    delegation_id: int,
    email: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """The owner links the account to approve through the usual sign-in at their host."""
    view = service.get_view(db, user, delegation_id)
    try:
        if view.viewer != "owner":
            raise InvalidInput("Only the account's owner can link it.", code="not_owner")
        address = normalize_email(email, allow_test_domains=services.sandbox)
        chosen = mailboxes.choose_provider(services, address)
        if chosen is not None and not chosen.has_sign_in_page:
            return RedirectResponse(
                f"{SERVER_LINK}?{urlencode({'email': address})}", status_code=303
            )
        if chosen is None:
            raise InvalidInput(
                f"Sendwell could not tell which service hosts {address}. Link it on the "
                "Settings tab first, then choose it here.",
                code="provider_unknown",
            )
        url = mailboxes.start_link(
            db,
            services,
            user=user,
            email=address,
            provider_name=chosen,
            session_secret=request.cookies.get(SESSION_COOKIE),
            delegation_id=view.delegation.id,
        )
    except SendwellError as error:
        return _page(request, db, user, delegation_id, settings, error=error, email=email)
    return RedirectResponse(url, status_code=303)


@router.post("/delegations/{delegation_id}/approve")
def approve(
    request: Request,
    delegation_id: int,
    mailbox_id: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
) -> Response:
    try:
        if not mailbox_id.strip().isdigit():
            raise InvalidInput("Choose one of your connected email accounts.", code="no_mailbox")
        view = service.approve(db, user, delegation_id, int(mailbox_id))
    except SendwellError as error:
        if error.status_code == 404:
            raise
        return _page(request, db, user, delegation_id, settings, error=error)
    address = view.mailbox.email if view.mailbox else "your account"
    return redirect_with_flash(
        request,
        view.link,
        f"Approved: {view.delegate.display_name} may send campaigns from {address}. You can "
        "withdraw this at any time.",
    )


@router.post("/delegations/{delegation_id}/withdraw")
def withdraw(
    request: Request,
    tasks: BackgroundTasks,
    delegation_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
    services: ProviderServices = Depends(get_services),
) -> Response:
    view, paused = service.withdraw_settled(
        db, request.app.state.session_factory, user, delegation_id
    )
    if view.viewer == "owner" and view.mailbox is not None and services.mailer is not None:
        tasks.add_task(services.mailer, *service.withdrawal_email(view, settings.base_url))
    count = f"{len(paused)} campaign{'s' if len(paused) != 1 else ''} paused"
    if view.viewer == "delegate":
        message = f"You no longer send from {view.owner.display_name}'s account; {count}."
    elif view.mailbox is None:
        message = f"You declined {view.delegate.display_name}'s request."
    else:
        message = (
            f"Approval withdrawn: {view.delegate.display_name} can no longer send from "
            f"{view.mailbox.email}; {count}."
        )
    return redirect_with_flash(request, view.link, message)


@router.post("/delegations/{delegation_id}/resume-all")
def resume_all(
    request: Request,
    delegation_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """The delegate resumes every campaign the withdrawal or a broken connection paused."""
    view = service.get_view(db, user, delegation_id)
    if view.viewer != "delegate" or view.delegation.mailbox_id is None:
        return redirect_with_flash(request, view.link, "No campaign of yours waits on it.")
    try:
        resumed = resuming.resume_paused_by_mailbox(
            db, user, view.delegation.mailbox_id, views.RESUMABLE
        )
    except SendwellError as error:
        return redirect_with_flash(request, view.link, error.message, kind="error")
    names = ", ".join(f"“{c.name}”" for c in resumed)
    message = (
        f"Resumed {len(resumed)} campaign{'s' if len(resumed) != 1 else ''}: {names}. "
        "Sending continues from where each left off."
        if resumed
        else "No campaign was waiting on this account."
    )
    return redirect_with_flash(request, view.link, message)


def _page(
    request: Request,
    db: Session,
    user: User,
    delegation_id: int,
    settings: Settings,
    *,
    error: SendwellError | None = None,
    email: str = "",
) -> Response:
    shown = views.delegation_page(
        db, user, settings, delegation_id, error=error.message if error else "", email=email
    )
    return render(
        request, "delegations/detail.html", shown, status_code=error.status_code if error else 200
    )
