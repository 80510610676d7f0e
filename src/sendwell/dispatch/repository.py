"""Every query the sending engine runs; the dialect decides how claims are locked."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    MailboxStatus,
    SendLedger,
)

PENDING = (EnrollmentStatus.NOT_STARTED, EnrollmentStatus.IN_PROGRESS)
COUNTS_TOWARD_CAP = (LedgerStatus.CLAIMED, LedgerStatus.UNKNOWN, LedgerStatus.SENT)


def is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def sending_mailboxes(db: Session, now: datetime) -> list[Mailbox]:
    """Connected mailboxes with an active campaign whose pacing allows a send now."""
    has_active = exists().where(
        Campaign.mailbox_id == Mailbox.id, Campaign.status == CampaignStatus.ACTIVE
    )
    return list(
        db.scalars(
            select(Mailbox)
            .where(
                Mailbox.status == MailboxStatus.CONNECTED,
                has_active,
                or_(Mailbox.send_not_before.is_(None), Mailbox.send_not_before <= now),
            )
            .order_by(Mailbox.send_not_before.nulls_first(), Mailbox.id)
        )
    )


def listening_mailboxes(db: Session) -> list[Mailbox]:
    """Connected mailboxes with an active or paused campaign: their replies matter."""
    watched = exists().where(
        Campaign.mailbox_id == Mailbox.id,
        Campaign.status.in_((CampaignStatus.ACTIVE, CampaignStatus.PAUSED)),
    )
    return list(
        db.scalars(
            select(Mailbox)
            .where(Mailbox.status == MailboxStatus.CONNECTED, watched)
            .order_by(Mailbox.id)
        )
    )


def active_campaigns(db: Session, mailbox_id: int) -> list[Campaign]:
    return list(
        db.scalars(
            select(Campaign)
            .where(Campaign.mailbox_id == mailbox_id, Campaign.status == CampaignStatus.ACTIVE)
            .options(selectinload(Campaign.steps))
        )
    )


def sends_since(db: Session, mailbox_id: int, since: datetime) -> tuple[int, datetime | None]:
    """Messages sent or in flight for a mailbox since a moment, and the oldest of them."""
    count, oldest = db.execute(
        select(func.count(), func.min(SendLedger.claimed_at)).where(
            SendLedger.mailbox_id == mailbox_id,
            SendLedger.claimed_at > since,
            SendLedger.status.in_(COUNTS_TOWARD_CAP),
        )
    ).one()
    return int(count), oldest


def next_due_enrollment(db: Session, campaign_ids: list[int], now: datetime) -> Enrollment | None:
    """The earliest-due recipient of these campaigns, locked (skipping rows others hold)."""
    query = (
        select(Enrollment)
        .where(
            Enrollment.campaign_id.in_(campaign_ids),
            Enrollment.status.in_(PENDING),
            Enrollment.next_due_at.is_not(None),
            Enrollment.next_due_at <= now,
        )
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(1)
    )
    if is_postgres(db):
        query = query.with_for_update(skip_locked=True, of=Enrollment)
    return db.scalar(query)


def take_send_slot(db: Session, mailbox_id: int, now: datetime, next_at: datetime) -> bool:
    """Compare-and-set the mailbox's pacing slot: True for the one worker that gets it."""
    result = db.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            Mailbox.status == MailboxStatus.CONNECTED,
            or_(Mailbox.send_not_before.is_(None), Mailbox.send_not_before <= now),
        )
        .values(send_not_before=next_at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def hold_mailbox(db: Session, mailbox_id: int, until: datetime) -> None:
    """Push a mailbox's next send back (a provider asked us to wait)."""
    db.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(
            send_not_before=func.coalesce(
                func.max(Mailbox.send_not_before, until)
                if not is_postgres(db)
                else func.greatest(Mailbox.send_not_before, until),
                until,
            )
        )
        .execution_options(synchronize_session=False)
    )


def ledger_row(db: Session, enrollment_id: int, step_position: int) -> SendLedger | None:
    return db.scalar(
        select(SendLedger).where(
            SendLedger.enrollment_id == enrollment_id, SendLedger.step_position == step_position
        )
    )


def open_gate(db: Session, ledger_id: int, lease_until: datetime) -> bool:
    """Mark a claim as being handed to the provider, only if nothing forbids it right now.

    One statement: the campaign is active, the mailbox connected and the recipient still
    pending. On PostgreSQL the campaign and mailbox rows are share-locked, so a pause either
    lands before this (and the send is released) or waits until it commits (and then sees
    the send in flight).
    """
    campaign_ok = select(Campaign.id).where(
        Campaign.id == SendLedger.campaign_id, Campaign.status == CampaignStatus.ACTIVE
    )
    mailbox_ok = select(Mailbox.id).where(
        Mailbox.id == SendLedger.mailbox_id, Mailbox.status == MailboxStatus.CONNECTED
    )
    if is_postgres(db):
        campaign_ok = campaign_ok.with_for_update(read=True)
        mailbox_ok = mailbox_ok.with_for_update(read=True)
    recipient_ok = select(Enrollment.id).where(
        Enrollment.id == SendLedger.enrollment_id, Enrollment.status.in_(PENDING)
    )
    result = db.execute(
        update(SendLedger)
        .where(
            SendLedger.id == ledger_id,
            SendLedger.status == LedgerStatus.CLAIMED,
            campaign_ok.exists(),
            mailbox_ok.exists(),
            recipient_ok.exists(),
        )
        .values(status=LedgerStatus.UNKNOWN, lease_until=lease_until, error="")
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def expired_claims(db: Session, now: datetime) -> list[SendLedger]:
    """Claims whose worker stopped before handing them to the provider."""
    return list(
        db.scalars(
            select(SendLedger).where(
                SendLedger.status == LedgerStatus.CLAIMED, SendLedger.lease_until < now
            )
        )
    )


def unsettled(db: Session, now: datetime, limit: int = 50) -> list[SendLedger]:
    """Sends whose outcome is unknown and no worker is waiting on any more."""
    return list(
        db.scalars(
            select(SendLedger)
            .where(SendLedger.status == LedgerStatus.UNKNOWN, SendLedger.lease_until <= now)
            .order_by(SendLedger.id)
            .limit(limit)
        )
    )


def in_flight(db: Session, campaign_ids: list[int], now: datetime) -> int:
    """Sends a worker is handing to a provider right now for these campaigns.

    A send whose outcome became unknown carries its error text: it was handed over earlier
    and is in no worker's hands any more.
    """
    return (
        db.scalar(
            select(func.count())
            .select_from(SendLedger)
            .where(
                SendLedger.campaign_id.in_(campaign_ids),
                SendLedger.status == LedgerStatus.UNKNOWN,
                SendLedger.lease_until > now,
                SendLedger.error == "",
            )
        )
        or 0
    )


def missing_metadata(db: Session, now: datetime, limit: int = 20) -> list[SendLedger]:
    """Sent in the last day without a known Message-ID, and not looked for just now."""
    return list(
        db.scalars(
            select(SendLedger)
            .where(
                SendLedger.status == LedgerStatus.SENT,
                SendLedger.message_id_header == "",
                SendLedger.sent_at > now - timedelta(days=1),
                or_(SendLedger.lease_until.is_(None), SendLedger.lease_until <= now),
            )
            .order_by(SendLedger.id)
            .limit(limit)
        )
    )


def earliest_due_by_campaign(db: Session) -> list[tuple[Campaign, datetime]]:
    """Each active campaign of a connected mailbox with its earliest due step."""
    due = func.min(Enrollment.next_due_at)
    rows = db.execute(
        select(Campaign, due)
        .join(Enrollment, Enrollment.campaign_id == Campaign.id)
        .join(Mailbox, Mailbox.id == Campaign.mailbox_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE,
            Mailbox.status == MailboxStatus.CONNECTED,
            Enrollment.status.in_(PENDING),
            Enrollment.next_due_at.is_not(None),
        )
        .group_by(Campaign.id)
        .options(selectinload(Campaign.mailbox))
    )
    return [(campaign, moment) for campaign, moment in rows if moment is not None]


def sent_rows_matching(
    db: Session, mailbox_id: int, message_ids: list[str], thread_id: str
) -> list[SendLedger]:
    """Our sent messages an inbound message answers: by Message-ID, else by thread."""
    conditions: list[ColumnElement[bool]] = []
    if message_ids:
        conditions.append(SendLedger.message_id_header.in_(message_ids))
    if thread_id:
        conditions.append(SendLedger.thread_id == thread_id)
    if not conditions:
        return []
    return list(
        db.scalars(
            select(SendLedger)
            .where(
                SendLedger.mailbox_id == mailbox_id,
                SendLedger.status == LedgerStatus.SENT,
                or_(*conditions),
            )
            .order_by(SendLedger.id.desc())
        )
    )
