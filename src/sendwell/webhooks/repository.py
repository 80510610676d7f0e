"""Every query the webhooks feature runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from sendwell.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)


def enabled_endpoints(db: Session, workspace_id: int) -> list[WebhookEndpoint]:
    return list(
        db.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.enabled)
            .order_by(WebhookEndpoint.id)
        )
    )


def endpoints(db: Session, workspace_id: int) -> list[WebhookEndpoint]:
    return list(
        db.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.workspace_id == workspace_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def get_endpoint(db: Session, workspace_id: int, endpoint_id: int) -> WebhookEndpoint | None:
    return db.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id
        )
    )


def all_endpoints(db: Session) -> list[WebhookEndpoint]:
    return list(db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def recent_deliveries(
    db: Session, endpoint_id: int, limit: int
) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    rows = db.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return [(delivery, event) for delivery, event in rows]


def attempts_for(db: Session, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    found: dict[int, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    for attempt in db.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    ):
        found[attempt.delivery_id].append(attempt)
    return found


def claim_next_due(db: Session, now: datetime, lease_until: datetime) -> int | None:
    """Lease the earliest due delivery whose predecessors (same endpoint and key) are done.

    On PostgreSQL the row is locked with SKIP LOCKED, so workers never take the same one;
    an earlier delivery with the same key that is still pending keeps later ones waiting,
    which is what keeps one campaign's events in order.
    """
    earlier = aliased(WebhookDelivery)
    delivery_id = db.scalar(
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.lease_until.is_(None)) | (WebhookDelivery.lease_until < now),
            WebhookEndpoint.enabled,
            ~exists().where(
                and_(
                    earlier.endpoint_id == WebhookDelivery.endpoint_id,
                    earlier.ordering_key == WebhookDelivery.ordering_key,
                    earlier.status == DeliveryStatus.PENDING,
                    earlier.id < WebhookDelivery.id,
                )
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(1)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    if delivery_id is None:
        return None
    db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(lease_until=lease_until)
        .execution_options(synchronize_session=False)
    )
    return delivery_id


def first_attempt_at(db: Session, delivery_id: int) -> datetime | None:
    return db.scalar(
        select(func.min(WebhookAttempt.at)).where(WebhookAttempt.delivery_id == delivery_id)
    )


def next_attempt_at(db: Session) -> datetime | None:
    """When the earliest pending delivery of an enabled endpoint is due."""
    return db.scalar(
        select(WebhookDelivery.next_attempt_at)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookEndpoint.enabled)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(1)
    )


def retry_pending_now(db: Session, endpoint_id: int, now: datetime) -> None:
    db.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def delete_events_before(db: Session, moment: datetime) -> None:
    """Forget finished events older than the retention; pending ones are kept."""
    unfinished = select(WebhookDelivery.event_id).where(
        WebhookDelivery.status == DeliveryStatus.PENDING
    )
    old = select(WebhookEvent.id).where(
        WebhookEvent.created_at < moment, WebhookEvent.id.not_in(unfinished)
    )
    old_ids = list(db.scalars(old.limit(1000)))
    if not old_ids:
        return
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(old_ids))
    db.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    db.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(old_ids)))
    db.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(old_ids)))
