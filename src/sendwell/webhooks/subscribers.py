"""The webhook outbox hears the other features' events: each becomes outbox rows in the unit
of work that made the change (`service.enqueue`), so a rolled-back change leaves no event."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendwell.kit import events
from sendwell.webhooks import service


def register() -> None:
    """Subscribe the outbox to every event that is a webhook type."""
    events.subscribe(events.MailboxStatusChanged, _mailbox_status_changed)
    events.subscribe(events.MailboxExpiring, _mailbox_expiring)
    events.subscribe(events.MailboxDomainHealthWorsened, _mailbox_domain_health_worsened)
    events.subscribe(events.CampaignStatusChanged, _campaign_status_changed)
    events.subscribe(events.RecipientFinished, _recipient_finished)


def _mailbox_status_changed(db: Session, event: events.MailboxStatusChanged) -> None:
    service.mailbox_changed(
        db,
        event.mailbox,
        event.kind,
        previous=event.previous,
        reason=event.reason,
        code=event.code,
    )


def _mailbox_expiring(db: Session, event: events.MailboxExpiring) -> None:
    service.mailbox_expiring(
        db, event.mailbox, expires_at=event.expires_at, reason=event.reason, action=event.action
    )


def _mailbox_domain_health_worsened(db: Session, event: events.MailboxDomainHealthWorsened) -> None:
    service.mailbox_domain_health_worsened(
        db, event.mailbox, domain=event.domain, checks=event.checks
    )


def _campaign_status_changed(db: Session, event: events.CampaignStatusChanged) -> None:
    service.campaign_changed(
        db, event.campaign_id, event.kind, reason=event.reason, data=event.data
    )


def _recipient_finished(db: Session, event: events.RecipientFinished) -> None:
    service.recipient_finished(db, event.enrollment, reply=event.reply)
