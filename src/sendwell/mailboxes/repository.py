"""Every query the mailboxes feature runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Delegation,
    DelegationStatus,
    DomainCheck,
    ExpiryWarning,
    LinkAttempt,
    Mailbox,
    MailboxEvent,
    MailboxEventKind,
    MailboxStatus,
    MailServer,
    User,
)
from sendwell.providers.base import ProviderName


def visible_mailboxes(db: Session, user: User) -> list[Mailbox]:
    """The user's own mailboxes; an admin sees every mailbox in the workspace."""
    query = select(Mailbox).where(Mailbox.workspace_id == user.workspace_id)
    if not user.is_admin:
        query = query.where(Mailbox.owner_id == user.id)
    return list(db.scalars(query.order_by(Mailbox.email, Mailbox.id)))


def owned_mailboxes(db: Session, user_id: int) -> list[Mailbox]:
    return list(
        db.scalars(select(Mailbox).where(Mailbox.owner_id == user_id).order_by(Mailbox.email))
    )


def get_visible_mailbox(db: Session, user: User, mailbox_id: int) -> Mailbox | None:
    query = select(Mailbox).where(
        Mailbox.id == mailbox_id, Mailbox.workspace_id == user.workspace_id
    )
    if not user.is_admin:
        query = query.where(Mailbox.owner_id == user.id)
    return db.scalar(query)


def get_mailbox(db: Session, mailbox_id: int) -> Mailbox | None:
    return db.get(Mailbox, mailbox_id)


def get_by_identity(db: Session, provider: ProviderName, subject: str) -> Mailbox | None:
    return db.scalar(
        select(Mailbox).where(Mailbox.provider == provider, Mailbox.subject == subject)
    )


def others_with_address(
    db: Session, workspace_id: int, provider: ProviderName, email: str, subject: str
) -> list[Mailbox]:
    return list(
        db.scalars(
            select(Mailbox).where(
                Mailbox.workspace_id == workspace_id,
                Mailbox.provider == provider,
                Mailbox.email == email,
                Mailbox.subject != subject,
            )
        )
    )


def mailbox_ids_with_status(db: Session, status: MailboxStatus) -> list[int]:
    return list(db.scalars(select(Mailbox.id).where(Mailbox.status == status).order_by(Mailbox.id)))


def claim_health_check(
    db: Session, mailbox_id: int, now: datetime, checked_before: datetime
) -> bool:
    """Take a connected mailbox's next health check unless one ran since `checked_before`."""
    result = db.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            Mailbox.status == MailboxStatus.CONNECTED,
            (Mailbox.last_checked_at.is_(None)) | (Mailbox.last_checked_at < checked_before),
        )
        .values(last_checked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def events(db: Session, mailbox_id: int, limit: int = 100) -> list[MailboxEvent]:
    return list(
        db.scalars(
            select(MailboxEvent)
            .where(MailboxEvent.mailbox_id == mailbox_id)
            .order_by(MailboxEvent.at.desc(), MailboxEvent.id.desc())
            .limit(limit)
        )
    )


def save_tokens_if_unchanged(
    db: Session, mailbox_id: int, expected_version: int, values: dict[str, object]
) -> bool:
    """Compare-and-swap on token_version: True when this write won."""
    result = db.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.token_version == expected_version)
        .values(token_version=expected_version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_link_attempt(db: Session, state_hash: str) -> LinkAttempt | None:
    return db.scalar(select(LinkAttempt).where(LinkAttempt.state_hash == state_hash))


def get_link_attempt_by_id(db: Session, attempt_id: int) -> LinkAttempt | None:
    return db.get(LinkAttempt, attempt_id)


def delete_stale_link_attempts(db: Session, before: datetime) -> None:
    db.execute(delete(LinkAttempt).where(LinkAttempt.expires_at < before))


def all_mailboxes_with_tokens(db: Session) -> list[Mailbox]:
    return list(
        db.scalars(
            select(Mailbox).where(
                (Mailbox.access_token.is_not(None)) | (Mailbox.refresh_token.is_not(None))
            )
        )
    )


def live_link_attempts(db: Session, now: datetime) -> list[LinkAttempt]:
    return list(db.scalars(select(LinkAttempt).where(LinkAttempt.expires_at >= now)))


def get_mail_server(db: Session, mailbox_id: int) -> MailServer | None:
    return db.get(MailServer, mailbox_id)


def mail_servers_with_secrets(db: Session) -> list[MailServer]:
    return list(db.scalars(select(MailServer).where(MailServer.secret.is_not(None))))


def latest_event_times(
    db: Session, mailbox_ids: list[int], kinds: list[MailboxEventKind]
) -> dict[tuple[int, MailboxEventKind], datetime]:
    """The newest event of each kind for each mailbox (grant given, last refresh)."""
    if not mailbox_ids:
        return {}
    rows = db.execute(
        select(MailboxEvent.mailbox_id, MailboxEvent.kind, func.max(MailboxEvent.at))
        .where(MailboxEvent.mailbox_id.in_(mailbox_ids), MailboxEvent.kind.in_(kinds))
        .group_by(MailboxEvent.mailbox_id, MailboxEvent.kind)
    )
    return {(row[0], row[1]): row[2] for row in rows}


def mail_servers_of(db: Session, mailbox_ids: list[int]) -> dict[int, MailServer]:
    if not mailbox_ids:
        return {}
    servers = db.scalars(select(MailServer).where(MailServer.mailbox_id.in_(mailbox_ids)))
    return {server.mailbox_id: server for server in servers}


def workspace_mailboxes(db: Session, workspace_id: int) -> list[Mailbox]:
    """Every mailbox of the workspace that is not disconnected, with its owner loaded."""
    return list(
        db.scalars(
            select(Mailbox)
            .options(selectinload(Mailbox.owner))
            .where(
                Mailbox.workspace_id == workspace_id,
                Mailbox.status != MailboxStatus.DISCONNECTED,
            )
            .order_by(Mailbox.email, Mailbox.id)
        )
    )


def warning_given(
    db: Session, workspace_id: int, scope: str, reason: str, expires_at: datetime
) -> bool:
    found = db.scalar(
        select(ExpiryWarning.id).where(
            ExpiryWarning.workspace_id == workspace_id,
            ExpiryWarning.scope == scope,
            ExpiryWarning.reason == reason,
            ExpiryWarning.expires_at == expires_at,
        )
    )
    return found is not None


def get_domain_check(db: Session, mailbox_id: int) -> DomainCheck | None:
    return db.get(DomainCheck, mailbox_id)


def domain_check_due(db: Session, mailbox_id: int, before: datetime) -> bool:
    """Whether the mailbox's domain was last checked before `before`, or never."""
    found = db.get(DomainCheck, mailbox_id)
    return found is None or found.checked_at is None or found.checked_at < before


def paused_counts_by_mailbox(db: Session, mailbox_ids: list[int]) -> dict[int, int]:
    """How many campaigns are paused, per mailbox."""
    if not mailbox_ids:
        return {}
    rows = db.execute(
        select(Campaign.mailbox_id, func.count())
        .where(Campaign.mailbox_id.in_(mailbox_ids), Campaign.status == CampaignStatus.PAUSED)
        .group_by(Campaign.mailbox_id)
    )
    return {int(mailbox_id): int(count) for mailbox_id, count in rows}


def approved_delegation(db: Session, delegate_id: int, mailbox_id: int) -> Delegation | None:
    """The approval that lets a user send from someone else's mailbox, if there is one."""
    return db.scalar(
        select(Delegation)
        .where(
            Delegation.delegate_id == delegate_id,
            Delegation.mailbox_id == mailbox_id,
            Delegation.status == DelegationStatus.APPROVED,
        )
        .limit(1)
    )
