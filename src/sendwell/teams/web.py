"""Pages: the Team page (admins), one member's page, and accepting an invitation."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.accounts.auth import current_user, set_session_cookie
from sendwell.campaigns import service as campaigns
from sendwell.config import Settings
from sendwell.kit.errors import InvalidInput, SendwellError
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import User
from sendwell.teams import service, views
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter()
TEAM = "/team"


@router.get(TEAM)
def team_page(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _team_page(request, db, user)


@router.post(f"{TEAM}/invitations")
def invite(
    request: Request,
    tasks: BackgroundTasks,
    email: str = Form(""),
    role: str = Form("member"),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
    services: ProviderServices = Depends(get_services),
) -> Response:
    try:
        invited = service.invite(
            db, user, email=email, role=service.parse_role(role), base_url=settings.base_url
        )
    except SendwellError as error:
        return _team_page(
            request, db, user, form={"email": email, "role": role}, error=error, status=error
        )
    address = invited.invitation.email
    if services.mailer is not None:
        # Sent once the invitation is committed: the link in the email always works.
        tasks.add_task(services.mailer, address, *service.invitation_email(invited, user))
        return redirect_with_flash(
            request,
            TEAM,
            f"An invitation was emailed to {address}. Its link works once, for 7 days.",
        )
    return _team_page(request, db, user, invited=invited, status_code=201)


@router.post(f"{TEAM}/invitations/{{invitation_id}}/cancel")
def cancel_invitation(
    request: Request,
    invitation_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    invitation = service.cancel_invitation(db, user, invitation_id)
    return redirect_with_flash(
        request, TEAM, f"The invitation for {invitation.email} is cancelled; its link is dead."
    )


@router.get(f"{TEAM}/users/{{user_id}}")
def member_page(
    request: Request,
    user_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _member_page(request, db, user, user_id)


@router.post(f"{TEAM}/users/{{user_id}}/role")
def change_role(
    request: Request,
    user_id: int,
    role: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.require_admin(user)
    try:
        member = service.update_user(db, user, user_id, role=service.parse_role(role))
    except SendwellError as error:
        if error.status_code == 404:
            raise
        return _member_page(request, db, user, user_id, error=error)
    label = service.ROLE_LABELS[member.role]
    return redirect_with_flash(
        request, f"{TEAM}/users/{member.id}", f"{member.display_name} is now {label.lower()}."
    )


@router.post(f"{TEAM}/users/{{user_id}}/deactivate")
def deactivate(
    request: Request,
    user_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        done = service.deactivate_settled(db, request.app.state.session_factory, user, user_id)
    except SendwellError as error:
        if error.status_code in (403, 404):
            raise
        return _member_page(request, db, user, user_id, error=error)
    name, paused = done.user.display_name, done.paused_campaigns
    count = f"{len(paused)} campaign{'s' if len(paused) != 1 else ''}"
    return redirect_with_flash(
        request,
        f"{TEAM}/users/{user_id}",
        f"{name} is deactivated: they are signed out everywhere, their API tokens are "
        f"revoked, and {count} paused. Their history is kept.",
    )


@router.post(f"{TEAM}/campaigns/{{campaign_id}}/reassign")
def reassign(
    request: Request,
    campaign_id: int,
    owner_id: str = Form(""),
    mailbox_id: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.require_admin(user)
    before = campaigns.get_campaign(db, user, campaign_id)
    back = f"{TEAM}/users/{before.owner_id}"
    try:
        campaign = service.reassign_campaign(
            db,
            user,
            campaign_id,
            owner_id=_number(owner_id, "new owner"),
            mailbox_id=_number(mailbox_id, "email account"),
        )
    except SendwellError as error:
        return redirect_with_flash(request, back, error.message, kind="error")
    return redirect_with_flash(
        request,
        back,
        f"“{campaign.name}” is reassigned. Its new owner can resume it from the Campaigns tab.",
    )


@router.get("/invitations/{token}")
def invitation_page(
    request: Request, token: str, db: Session = Depends(get_db, scope="function")
) -> Response:
    try:
        invitation = service.invitation_for(db, token)
    except SendwellError as error:
        return _invitation_refused(request, error)
    return render(request, "teams/accept.html", {"invitation": invitation, "form": {}})


@router.post("/invitations/{token}")
def accept_invitation(
    request: Request,
    token: str,
    name: str = Form(""),
    password: str = Form(""),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
) -> Response:
    try:
        user = service.accept_invitation(db, token=token, name=name, password=password)
    except SendwellError as error:
        try:
            invitation = service.invitation_for(db, token)
        except SendwellError as refused:
            return _invitation_refused(request, refused)
        return render(
            request,
            "teams/accept.html",
            {"invitation": invitation, "form": {"name": name}, "error": error.message},
            status_code=error.status_code,
        )
    response = redirect_with_flash(
        request, "/messaging/settings", f"Welcome to Sendwell, {user.display_name}."
    )
    secret = accounts.start_session(db, user, timedelta(days=settings.session_days))
    set_session_cookie(response, secret, settings)
    return response


def _invitation_refused(request: Request, error: SendwellError) -> Response:
    return render(
        request,
        "error.html",
        {"title": "This invitation cannot be used", "message": error.message},
        status_code=error.status_code,
    )


def _team_page(
    request: Request,
    db: Session,
    user: User,
    *,
    form: dict[str, str] | None = None,
    invited: service.Invited | None = None,
    error: SendwellError | None = None,
    status: SendwellError | None = None,
    status_code: int = 200,
) -> Response:
    shown = views.team_page(
        db, user, form=form, invited=invited, error=error.message if error else ""
    )
    return render(
        request,
        "teams/team.html",
        shown,
        status_code=status.status_code if status else status_code,
    )


def _member_page(
    request: Request, db: Session, user: User, user_id: int, *, error: SendwellError | None = None
) -> Response:
    shown = views.member_page(db, user, user_id, error=error.message if error else "")
    return render(
        request, "teams/member.html", shown, status_code=error.status_code if error else 200
    )


def _number(raw: str, what: str) -> int:
    if not raw.strip().isdigit():
        raise InvalidInput(f"Choose the {what}.", code="invalid_choice")
    return int(raw.strip())
