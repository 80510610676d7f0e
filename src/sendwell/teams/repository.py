"""Every query the team feature runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sendwell.models import Campaign, CampaignStatus, Invitation, Role, User


def workspace_users(db: Session, workspace_id: int) -> list[User]:
    """Everyone in the workspace: active users first, then by name and address."""
    return list(
        db.scalars(
            select(User)
            .where(User.workspace_id == workspace_id)
            .order_by(User.deactivated_at.is_not(None), User.name, User.email, User.id)
        )
    )


def get_user(db: Session, workspace_id: int, user_id: int) -> User | None:
    return db.scalar(select(User).where(User.id == user_id, User.workspace_id == workspace_id))


def get_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


def count_active_admins(db: Session, workspace_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.workspace_id == workspace_id,
                User.role == Role.ADMIN,
                User.deactivated_at.is_(None),
            )
        )
        or 0
    )


def open_invitations(db: Session, workspace_id: int, now: datetime) -> list[Invitation]:
    """Invitations not yet used, cancelled or expired, newest first."""
    return list(
        db.scalars(
            select(Invitation)
            .where(
                Invitation.workspace_id == workspace_id,
                Invitation.accepted_at.is_(None),
                Invitation.cancelled_at.is_(None),
                Invitation.expires_at > now,
            )
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        )
    )


def cancel_open_invitations_for(db: Session, workspace_id: int, email: str, now: datetime) -> None:
    """A new invitation replaces any open one for the same address: its link stops working."""
    db.execute(
        update(Invitation)
        .where(
            Invitation.workspace_id == workspace_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .values(cancelled_at=now)
        .execution_options(synchronize_session=False)
    )


def get_invitation(db: Session, workspace_id: int, invitation_id: int) -> Invitation | None:
    return db.scalar(
        select(Invitation).where(
            Invitation.id == invitation_id, Invitation.workspace_id == workspace_id
        )
    )


def get_invitation_by_hash(db: Session, token_hash: str) -> Invitation | None:
    return db.scalar(select(Invitation).where(Invitation.token_hash == token_hash))


def spend_invitation(db: Session, invitation_id: int, now: datetime) -> bool:
    """Mark an invitation used, once: True for the one request that won."""
    result = db.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .values(accepted_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def active_campaign_ids(db: Session, owner_id: int) -> list[int]:
    return list(
        db.scalars(
            select(Campaign.id)
            .where(Campaign.owner_id == owner_id, Campaign.status == CampaignStatus.ACTIVE)
            .order_by(Campaign.id)
        )
    )


def campaigns_of(db: Session, owner_id: int) -> list[Campaign]:
    """A user's campaigns that are not archived, newest first."""
    return list(
        db.scalars(
            select(Campaign)
            .where(Campaign.owner_id == owner_id, Campaign.status != CampaignStatus.ARCHIVED)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        )
    )
