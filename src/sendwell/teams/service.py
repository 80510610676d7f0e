"""Team rules: invitations (one-time links), roles, deactivation, and reassigning campaigns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendwell.accounts import passwords
from sendwell.accounts import service as accounts
from sendwell.campaigns import service as campaigns
from sendwell.db import commit_then
from sendwell.delegations import service as delegations
from sendwell.dispatch.engine import settle_in_flight
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from sendwell.kit.secrets import hash_secret, new_secret
from sendwell.models import Campaign, Invitation, PauseReason, Role, User
from sendwell.teams import repository as repo

INVITATION_LIFETIME = timedelta(days=7)
INVITATION_PATH = "/invitations/"
ROLE_LABELS = {Role.ADMIN: "Admin", Role.MEMBER: "Member"}


@dataclass(frozen=True)
class Invited:
    """A new invitation and its link, which exists only here: the table keeps its hash."""

    invitation: Invitation
    link: str


@dataclass(frozen=True)
class Deactivated:
    user: User
    paused_campaigns: list[int]


def require_admin(user: User) -> None:
    """Team management is for admins; a member gets the same answer whatever they ask about."""
    if not user.is_admin:
        raise Forbidden("Only workspace admins manage the team.", code="admins_only")


def parse_role(raw: str) -> Role:
    try:
        return Role(raw.strip().lower())
    except ValueError:
        raise InvalidInput("Choose the role Admin or Member.", code="invalid_role") from None


def team(db: Session, admin: User) -> list[User]:
    require_admin(admin)
    return repo.workspace_users(db, admin.workspace_id)


def teammates(db: Session, user: User) -> list[User]:
    """The other active users of the workspace: whom a user can ask to share a mailbox."""
    return [
        u for u in repo.workspace_users(db, user.workspace_id) if u.id != user.id and u.is_active
    ]


def get_member(db: Session, admin: User, user_id: int) -> User:
    require_admin(admin)
    found = repo.get_user(db, admin.workspace_id, user_id)
    if found is None:
        raise NotFound("No such user.", code="unknown_user")
    return found


def open_invitations(db: Session, admin: User) -> list[Invitation]:
    require_admin(admin)
    return repo.open_invitations(db, admin.workspace_id, utcnow())


def invite(db: Session, admin: User, *, email: str, role: Role, base_url: str) -> Invited:
    """A one-time link for one address; it replaces any earlier open link for that address."""
    require_admin(admin)
    address = accounts.normalize_email(email)
    existing = repo.get_user_by_email(db, address)
    if existing is not None:
        state = "" if existing.is_active else " (deactivated)"
        raise Conflict(f"{address} already has a Sendwell account{state}.", code="duplicate_email")
    now = utcnow()
    repo.cancel_open_invitations_for(db, admin.workspace_id, address, now)
    token = new_secret()
    invitation = Invitation(
        workspace_id=admin.workspace_id,
        email=address,
        role=role,
        token_hash=hash_secret(token),
        invited_by_id=admin.id,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    db.add(invitation)
    db.flush()
    return Invited(invitation, f"{base_url}{INVITATION_PATH}{token}")


def invitation_email(invited: Invited, admin: User) -> tuple[str, str]:
    """The subject and text of the email that carries an invitation."""
    expires = invited.invitation.expires_at
    return (
        f"{admin.display_name} invites you to Sendwell",
        f"{admin.display_name} ({admin.email}) invites you to their Sendwell workspace as "
        f"{ROLE_LABELS[invited.invitation.role].lower()}.\n\n"
        f"Choose your password here: {invited.link}\n\n"
        f"The link works once, until {expires:%Y-%m-%d %H:%M} UTC. If you did not expect "
        "it, ignore this email.\n",
    )


def cancel_invitation(db: Session, admin: User, invitation_id: int) -> Invitation:
    require_admin(admin)
    invitation = repo.get_invitation(db, admin.workspace_id, invitation_id)
    if invitation is None:
        raise NotFound("No such invitation.", code="unknown_invitation")
    if invitation.open:
        invitation.cancelled_at = utcnow()
    return invitation


def invitation_for(db: Session, token: str) -> Invitation:
    """The open invitation a link stands for, or why it cannot be used."""
    invitation = repo.get_invitation_by_hash(db, hash_secret(token)) if token else None
    if invitation is None:
        raise NotFound(
            "This invitation link is not valid. Ask your workspace admin for a new one.",
            code="unknown_invitation",
        )
    if invitation.accepted_at is not None:
        raise Conflict(
            "This invitation was already used. Sign in with the account it created.",
            code="invitation_used",
        )
    if invitation.cancelled_at is not None or invitation.expires_at <= utcnow():
        raise Conflict(
            "This invitation has expired or was replaced by a newer one. Ask your workspace "
            "admin for a new link.",
            code="invitation_expired",
        )
    return invitation


def accept_invitation(db: Session, *, token: str, name: str, password: str) -> User:
    """Create the invited user; the link is spent by the first request that gets here."""
    invitation = invitation_for(db, token)
    passwords.check_password_rules(password, invitation.email)
    if repo.get_user_by_email(db, invitation.email) is not None:
        raise Conflict(
            f"{invitation.email} already has a Sendwell account. Sign in instead.",
            code="duplicate_email",
        )
    now = utcnow()
    if not repo.spend_invitation(db, invitation.id, now):
        raise Conflict("This invitation was already used.", code="invitation_used")
    user = User(
        workspace_id=invitation.workspace_id,
        email=invitation.email,
        name=accounts.clean_name(name),
        password_hash=passwords.hash_password(password),
        role=invitation.role,
    )
    db.add(user)
    db.flush()
    invitation.user_id = user.id
    invitation.accepted_at = now
    return user


def update_user(
    db: Session, actor: User, user_id: int, *, name: str | None = None, role: Role | None = None
) -> User:
    """Anyone renames themselves; admins rename anyone and change roles."""
    if actor.is_admin or (actor.id == user_id and role is None):
        target = repo.get_user(db, actor.workspace_id, user_id)
    elif actor.id == user_id:
        raise Forbidden("Only workspace admins change roles.", code="admins_only")
    else:
        target = None
    if target is None:
        raise NotFound("No such user.", code="unknown_user")
    if name is not None:
        target.name = accounts.clean_name(name)
    if role is not None and role is not target.role:
        _keep_an_admin(db, target, role)
        target.role = role
    db.flush()
    return target


def _keep_an_admin(db: Session, target: User, role: Role) -> None:
    if (
        target.role is Role.ADMIN
        and role is not Role.ADMIN
        and target.is_active
        and repo.count_active_admins(db, target.workspace_id) <= 1
    ):
        raise Conflict(
            "The workspace needs at least one admin: make someone else an admin first.",
            code="last_admin",
        )


def deactivate(db: Session, admin: User, user_id: int) -> Deactivated:
    """They cannot sign in any more; sessions and API tokens end; their active campaigns pause
    (and campaigns sent from their mailboxes by others, whose approval ends with them); every
    campaign, recipient and event is kept."""
    target = get_member(db, admin, user_id)
    if target.id == admin.id:
        raise Conflict(
            "You cannot deactivate yourself; another admin can.", code="cannot_deactivate_self"
        )
    if not target.is_active:
        return Deactivated(target, [])
    target.deactivated_at = utcnow()
    accounts.end_every_session(db, target.id)
    paused = []
    for campaign_id in repo.active_campaign_ids(db, target.id):
        campaigns.pause(db, admin, campaign_id, reason=PauseReason.OWNER_DEACTIVATED)
        paused.append(campaign_id)
    paused += delegations.end_for_deactivated(db, target, actor=admin)
    db.flush()
    return Deactivated(target, paused)


def deactivate_settled(
    db: Session, factory: sessionmaker[Session], admin: User, user_id: int
) -> Deactivated:
    """Deactivate; as for a pause, once the page says "paused", nothing more of the campaigns
    it paused goes out: the pauses are committed, then their in-flight sends waited for."""
    done = deactivate(db, admin, user_id)
    if done.paused_campaigns:
        commit_then(db, lambda: settle_in_flight(factory, done.paused_campaigns))
    return done


def campaigns_of(db: Session, admin: User, user_id: int) -> list[Campaign]:
    """A member's campaigns that are not archived, for an admin to review or hand over."""
    target = get_member(db, admin, user_id)
    return repo.campaigns_of(db, target.id)


def reassign_campaign(
    db: Session, admin: User, campaign_id: int, *, owner_id: int, mailbox_id: int
) -> Campaign:
    """Hand a campaign to another active user and a mailbox they may send from."""
    require_admin(admin)
    campaigns.get_campaign(db, admin, campaign_id)  # another workspace's is not found
    new_owner = repo.get_user(db, admin.workspace_id, owner_id)
    if new_owner is None or not new_owner.is_active:
        raise InvalidInput("Choose an active member of the workspace.", code="unknown_user")
    return campaigns.reassign(db, admin, campaign_id, new_owner=new_owner, mailbox_id=mailbox_id)
