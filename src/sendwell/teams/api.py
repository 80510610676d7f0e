"""JSON routes: the workspace's users (admins), invitations, deactivation, reassignment."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.accounts.schemas import UserOut
from sendwell.campaigns.api import campaign_out
from sendwell.campaigns.schemas import CampaignOut
from sendwell.config import Settings
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import User
from sendwell.teams import service
from sendwell.teams.schemas import DeactivatedOut, InvitationOut, InviteIn, ReassignIn, UserPatch
from sendwell.web.deps import get_db, get_services, get_settings

router = APIRouter(tags=["team"])


@router.get("/users", response_model=list[UserOut], summary="Admins: every user of the workspace")
def list_users(
    user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> list[UserOut]:
    return [UserOut.model_validate(member) for member in service.team(db, user)]


@router.post(
    "/users",
    response_model=InvitationOut,
    status_code=201,
    summary="Admins: invite someone (a one-time link, emailed when the server has mail)",
)
def invite(
    body: InviteIn,
    tasks: BackgroundTasks,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    settings: Settings = Depends(get_settings),
    services: ProviderServices = Depends(get_services),
) -> InvitationOut:
    invited = service.invite(db, user, email=body.email, role=body.role, base_url=settings.base_url)
    if services.mailer is not None:
        tasks.add_task(
            services.mailer, invited.invitation.email, *service.invitation_email(invited, user)
        )
    invitation = invited.invitation
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        expires_at=invitation.expires_at,
        emailed=services.mailer is not None,
        invite_url=None if services.mailer is not None else invited.link,
    )


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    summary="Change a name (anyone, their own) or a role (admins)",
)
def patch_user(
    user_id: int,
    body: UserPatch,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> UserOut:
    changed = service.update_user(db, user, user_id, name=body.name, role=body.role)
    return UserOut.model_validate(changed)


@router.post(
    "/users/{user_id}/deactivate",
    response_model=DeactivatedOut,
    summary="Admins: deactivate a user; sessions and tokens end, active campaigns pause",
)
def deactivate(
    user_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> DeactivatedOut:
    done = service.deactivate(db, user, user_id)
    return DeactivatedOut(
        user=UserOut.model_validate(done.user), paused_campaigns=done.paused_campaigns
    )


@router.post(
    "/campaigns/{campaign_id}/reassign",
    response_model=CampaignOut,
    summary="Admins: hand a campaign that is not sending to another user and email account",
)
def reassign(
    campaign_id: int,
    body: ReassignIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    campaign = service.reassign_campaign(
        db, user, campaign_id, owner_id=body.owner_id, mailbox_id=body.mailbox_id
    )
    return campaign_out(db, campaign)
