"""Every query the delegations feature runs."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Delegation,
    DelegationStatus,
    Mailbox,
    MailboxStatus,
    User,
)

OPEN = (DelegationStatus.REQUESTED, DelegationStatus.APPROVED)


def get(db: Session, workspace_id: int, delegation_id: int) -> Delegation | None:
    return db.scalar(
        select(Delegation).where(
            Delegation.id == delegation_id, Delegation.workspace_id == workspace_id
        )
    )


def involving(db: Session, user_id: int) -> list[Delegation]:
    """Delegations the user asked for or was asked for, newest first."""
    return list(
        db.scalars(
            select(Delegation)
            .where(or_(Delegation.delegate_id == user_id, Delegation.owner_id == user_id))
            .order_by(Delegation.requested_at.desc(), Delegation.id.desc())
        )
    )


def open_between(db: Session, delegate_id: int, owner_id: int) -> Delegation | None:
    return db.scalar(
        select(Delegation)
        .where(
            Delegation.delegate_id == delegate_id,
            Delegation.owner_id == owner_id,
            Delegation.status.in_(OPEN),
        )
        .limit(1)
    )


def open_involving(db: Session, user_id: int) -> list[Delegation]:
    return [d for d in involving(db, user_id) if d.status in OPEN]


def users(db: Session, user_ids: set[int]) -> dict[int, User]:
    if not user_ids:
        return {}
    return {u.id: u for u in db.scalars(select(User).where(User.id.in_(user_ids)))}


def mailboxes(db: Session, mailbox_ids: set[int]) -> dict[int, Mailbox]:
    if not mailbox_ids:
        return {}
    return {m.id: m for m in db.scalars(select(Mailbox).where(Mailbox.id.in_(mailbox_ids)))}


def approved_mailboxes(db: Session, delegate_id: int) -> list[Mailbox]:
    """Teammates' mailboxes the user may send from now, by address."""
    return list(
        db.scalars(
            select(Mailbox)
            .join(Delegation, Delegation.mailbox_id == Mailbox.id)
            .where(
                Delegation.delegate_id == delegate_id,
                Delegation.status == DelegationStatus.APPROVED,
            )
            .order_by(Mailbox.email, Mailbox.id)
            .distinct()
        )
    )


def owned_connected_mailboxes(db: Session, owner_id: int) -> list[Mailbox]:
    return list(
        db.scalars(
            select(Mailbox)
            .where(Mailbox.owner_id == owner_id, Mailbox.status == MailboxStatus.CONNECTED)
            .order_by(Mailbox.email, Mailbox.id)
        )
    )


def campaigns_sent(db: Session, delegate_id: int, mailbox_id: int) -> list[Campaign]:
    """The delegate's campaigns from the mailbox, every status, newest first."""
    return list(
        db.scalars(
            select(Campaign)
            .where(Campaign.owner_id == delegate_id, Campaign.mailbox_id == mailbox_id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        )
    )


def active_campaign_ids(db: Session, delegate_id: int, mailbox_id: int) -> list[int]:
    return list(
        db.scalars(
            select(Campaign.id)
            .where(
                Campaign.owner_id == delegate_id,
                Campaign.mailbox_id == mailbox_id,
                Campaign.status == CampaignStatus.ACTIVE,
            )
            .order_by(Campaign.id)
        )
    )
