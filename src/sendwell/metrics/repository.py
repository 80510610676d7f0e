"""The queries behind the database-wide gauges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    Mailbox,
    SendLedger,
    WebhookDelivery,
)
from sendwell.models.campaign import enrollment_pending


def _by_status(db: Session, status: InstrumentedAttribute[Any]) -> dict[str, int]:
    """Rows of the column's table counted by status."""
    rows = db.execute(select(status, func.count()).group_by(status))
    return {str(value): int(count) for value, count in rows}


def ledger_counts(db: Session) -> dict[str, int]:
    return _by_status(db, SendLedger.status)


def mailbox_counts(db: Session) -> dict[str, int]:
    return _by_status(db, Mailbox.status)


def campaign_counts(db: Session) -> dict[str, int]:
    return _by_status(db, Campaign.status)


def webhook_delivery_counts(db: Session) -> dict[str, int]:
    return _by_status(db, WebhookDelivery.status)


def oldest_due_step(db: Session) -> datetime | None:
    """When the earliest pending step of an active campaign fell due."""
    return db.scalar(
        select(func.min(Enrollment.next_due_at))
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE,
            enrollment_pending(),
            Enrollment.next_due_at.is_not(None),
        )
    )
