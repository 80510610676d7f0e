"""The queries behind the database-wide gauges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    SendLedger,
    WebhookDelivery,
)

PENDING = (EnrollmentStatus.NOT_STARTED, EnrollmentStatus.IN_PROGRESS)


def ledger_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(SendLedger.status, func.count()).group_by(SendLedger.status))
    return {str(status): int(count) for status, count in rows}


def mailbox_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(Mailbox.status, func.count()).group_by(Mailbox.status))
    return {str(status): int(count) for status, count in rows}


def campaign_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(Campaign.status, func.count()).group_by(Campaign.status))
    return {str(status): int(count) for status, count in rows}


def webhook_delivery_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status))
    return {str(status): int(count) for status, count in rows}


def oldest_due_step(db: Session) -> datetime | None:
    """When the earliest pending step of an active campaign fell due."""
    return db.scalar(
        select(func.min(Enrollment.next_due_at))
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE,
            Enrollment.status.in_(PENDING),
            Enrollment.next_due_at.is_not(None),
        )
    )
