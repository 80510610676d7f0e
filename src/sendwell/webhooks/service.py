"""Webhook rules: endpoints admins register, and events written to the outbox with a change."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Forbidden, InvalidInput, NotFound
from sendwell.kit.outbound import OutboundPolicy
from sendwell.kit.signals import webhook_work
from sendwell.kit.tokenbox import TokenBox
from sendwell.models import (
    Campaign,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    MailboxEventKind,
    MailboxStatus,
    Reply,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from sendwell.webhooks import repository as repo
from sendwell.webhooks.guard import resolve_destination

EVENT_TYPES = (
    "mailbox.connected",
    "mailbox.reauth_required",
    "mailbox.reconnected",
    "mailbox.disconnected",
    "mailbox.expiring",
    "mailbox.domain_health_worsened",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.reopened",
    "recipient.replied",
    "recipient.bounced",
    "recipient.unsubscribed",
)
MAILBOX_EVENTS = {
    MailboxEventKind.CONNECTED: "mailbox.connected",
    MailboxEventKind.REAUTHENTICATED: "mailbox.reconnected",
    MailboxEventKind.REAUTH_REQUIRED: "mailbox.reauth_required",
    MailboxEventKind.DISCONNECTED: "mailbox.disconnected",
}
# Campaign history kinds that are webhook events, and the status each leaves the campaign in.
CAMPAIGN_EVENTS = {
    "started": "active",
    "paused": "paused",
    "resumed": "active",
    "completed": "completed",
    "reopened": "active",
}
RECIPIENT_EVENTS = {
    EnrollmentStatus.REPLIED: "recipient.replied",
    EnrollmentStatus.BOUNCED: "recipient.bounced",
    EnrollmentStatus.UNSUBSCRIBED: "recipient.unsubscribed",
}
SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret
MIN_SECRET_LENGTH = 16
RECENT_DELIVERIES = 50
# Each event is delivered to every endpoint: their number bounds a workspace's outbound work.
MAX_ENDPOINTS = 50


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: WebhookEvent
    attempts: list[WebhookAttempt]


def enqueue(
    db: Session, *, workspace_id: int, event_type: str, ordering_key: str, data: dict[str, Any]
) -> WebhookEvent | None:
    """Write an event and one pending delivery per subscribed endpoint, in this transaction."""
    subscribed = _subscribed(db, workspace_id, event_type)
    if not subscribed:
        return None
    now = utcnow()
    event = WebhookEvent(
        workspace_id=workspace_id, type=event_type, payload=json.dumps(data), created_at=now
    )
    db.add(event)
    db.flush()
    for endpoint in subscribed:
        db.add(
            WebhookDelivery(
                event_id=event.id,
                endpoint_id=endpoint.id,
                ordering_key=ordering_key,
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
            )
        )
    db.flush()
    webhook_work.request(db)
    return event


ENDPOINTS_KEY = "sendwell.webhook_endpoints"


def _subscribed(db: Session, workspace_id: int, event_type: str) -> list[WebhookEndpoint]:
    """The workspace's enabled endpoints that take this type of event."""
    return [e for e in _enabled_endpoints(db, workspace_id) if event_type in e.event_types]


def _enabled_endpoints(db: Session, workspace_id: int) -> list[WebhookEndpoint]:
    """The workspace's enabled endpoints, read once per transaction: pausing a mailbox's
    200 campaigns writes 200 events in one unit of work."""
    transaction = db.get_transaction()
    cached = db.info.get(ENDPOINTS_KEY)
    if cached is not None and cached[0] is transaction and cached[1] == workspace_id:
        return list(cached[2])
    found = repo.enabled_endpoints(db, workspace_id)
    db.info[ENDPOINTS_KEY] = (transaction, workspace_id, found)
    return found


def mailbox_changed(
    db: Session,
    mailbox: Mailbox,
    kind: MailboxEventKind,
    *,
    previous: MailboxStatus,
    reason: str,
    code: str,
) -> None:
    """A mailbox transition: connected, needs reauthentication, reconnected, disconnected."""
    event_type = MAILBOX_EVENTS.get(kind)
    if event_type is None or (
        event_type == "mailbox.reauth_required" and previous is mailbox.status
    ):
        return
    enqueue(
        db,
        workspace_id=mailbox.workspace_id,
        event_type=event_type,
        ordering_key=f"mailbox:{mailbox.id}",
        data={
            "mailbox": _mailbox_data(mailbox),
            "previous_status": previous.value,
            "reason": reason,
            "provider_code": code,
        },
    )


def _mailbox_data(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.id,
        "email": mailbox.email,
        "provider": mailbox.provider,
        "status": mailbox.status.value,
        "owner_id": mailbox.owner_id,
    }


def mailbox_expiring(
    db: Session, mailbox: Mailbox, *, expires_at: datetime, reason: str, action: str
) -> None:
    """A mailbox's connection is expected to end soon: the warning, once per cause and date."""
    enqueue(
        db,
        workspace_id=mailbox.workspace_id,
        event_type="mailbox.expiring",
        ordering_key=f"mailbox:{mailbox.id}",
        data={
            "mailbox": _mailbox_data(mailbox),
            "expires_at": expires_at.isoformat(),
            "reason": reason,
            "action": action,
        },
    )


def mailbox_domain_health_worsened(
    db: Session, mailbox: Mailbox, *, domain: str, checks: list[dict[str, Any]]
) -> None:
    """A check of the mailbox's sending domain (MX, SPF, DKIM, DMARC) got worse."""
    enqueue(
        db,
        workspace_id=mailbox.workspace_id,
        event_type="mailbox.domain_health_worsened",
        ordering_key=f"mailbox:{mailbox.id}",
        data={"mailbox": _mailbox_data(mailbox), "domain": domain, "checks": checks},
    )


def campaign_changed(
    db: Session, campaign_id: int, kind: str, *, reason: str, data: dict[str, Any] | None = None
) -> None:
    """A campaign started, paused, resumed or completed; `data` adds to the payload (a
    resume's catch-up choice and its effect)."""
    status = CAMPAIGN_EVENTS.get(kind)
    campaign = db.get(Campaign, campaign_id) if status else None
    if status is None or campaign is None:
        return
    event_type = f"campaign.{kind}"
    if not _subscribed(db, campaign.workspace_id, event_type):
        return  # nobody takes it: no payload to build (a pause may tell of 200 campaigns)
    enqueue(
        db,
        workspace_id=campaign.workspace_id,
        event_type=event_type,
        ordering_key=f"campaign:{campaign.id}",
        data={
            "campaign": _campaign_data(campaign, status),
            "reason": reason,
            # Why a pause happened, as a code (user, bounce_rate, mailbox_reauth_required…).
            **(
                {"pause_reason": campaign.pause_reason.value if campaign.pause_reason else None}
                if kind == "paused"
                else {}
            ),
            **(data or {}),
        },
    )


def recipient_finished(db: Session, enrollment: Enrollment, *, reply: Reply | None = None) -> None:
    """A recipient replied, bounced or unsubscribed (other endings are not events).

    A reply read from the mailbox names its row in the Replies view (`data.reply`), so a
    receiver can mark it with `PATCH /api/v1/replies/{id}`.
    """
    event_type = RECIPIENT_EVENTS.get(enrollment.status)
    campaign = db.get(Campaign, enrollment.campaign_id) if event_type else None
    if event_type is None or campaign is None:
        return
    data: dict[str, Any] = {
        "recipient": {
            "id": enrollment.id,
            "email": enrollment.email,
            "status": enrollment.status.value,
            "reason": enrollment.status_reason,
        },
        "campaign": _campaign_data(campaign, campaign.status.value),
    }
    if reply is not None:
        data["reply"] = {"id": reply.id, "interest": reply.interest.value}
    enqueue(
        db,
        workspace_id=campaign.workspace_id,
        event_type=event_type,
        ordering_key=f"campaign:{campaign.id}",
        data=data,
    )


def _campaign_data(campaign: Campaign, status: str) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": status,
        "mailbox_id": campaign.mailbox_id,
    }


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("Only a workspace admin can manage webhooks.", code="admin_only")


def list_endpoints(db: Session, user: User) -> list[WebhookEndpoint]:
    require_admin(user)
    return repo.endpoints(db, user.workspace_id)


def get_endpoint(db: Session, user: User, endpoint_id: int) -> WebhookEndpoint:
    require_admin(user)
    endpoint = repo.get_endpoint(db, user.workspace_id, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="unknown_webhook")
    return endpoint


def create_endpoint(
    db: Session,
    box: TokenBox,
    user: User,
    *,
    url: str,
    events: list[str],
    secret: str = "",
    description: str = "",
    outbound: OutboundPolicy,
) -> WebhookEndpoint:
    """Register an endpoint; without a secret one is generated."""
    require_admin(user)
    if len(repo.endpoints(db, user.workspace_id)) >= MAX_ENDPOINTS:
        raise InvalidInput(
            f"A workspace can have at most {MAX_ENDPOINTS} webhook endpoints; delete one first.",
            code="too_many_endpoints",
        )
    endpoint = WebhookEndpoint(
        workspace_id=user.workspace_id,
        url=_check_url(url, outbound),
        events=" ".join(_check_events(events)),
        secret=box.seal(_check_secret(secret) or SECRET_PREFIX + secrets.token_urlsafe(32)),
        description=_check_description(description),
        enabled=True,
        created_by_id=user.id,
        created_at=utcnow(),
    )
    db.add(endpoint)
    db.info.pop(ENDPOINTS_KEY, None)
    db.flush()
    return endpoint


def update_endpoint(
    db: Session,
    box: TokenBox,
    user: User,
    endpoint_id: int,
    *,
    outbound: OutboundPolicy,
    url: str | None = None,
    events: list[str] | None = None,
    secret: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint; enabling it again retries what is waiting at once."""
    endpoint = get_endpoint(db, user, endpoint_id)
    if url is not None:
        endpoint.url = _check_url(url, outbound)
    if events is not None:
        endpoint.events = " ".join(_check_events(events))
    if secret is not None:
        endpoint.secret = box.seal(
            _check_secret(secret) or SECRET_PREFIX + secrets.token_urlsafe(32)
        )
    if description is not None:
        endpoint.description = _check_description(description)
    if enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        db.info.pop(ENDPOINTS_KEY, None)
        endpoint.disabled_reason = ""
        endpoint.disabled_at = None
        endpoint.failing_since = None
        repo.retry_pending_now(db, endpoint.id, utcnow())
    elif enabled is False and endpoint.enabled:
        endpoint.enabled = False
        db.info.pop(ENDPOINTS_KEY, None)
        endpoint.disabled_reason = f"Disabled by {user.display_name}."
        endpoint.disabled_at = utcnow()
    db.flush()
    return endpoint


def delete_endpoint(db: Session, user: User, endpoint_id: int) -> None:
    """Remove an endpoint with its deliveries and their attempts."""
    endpoint = get_endpoint(db, user, endpoint_id)
    db.delete(endpoint)
    db.info.pop(ENDPOINTS_KEY, None)
    db.flush()


def reveal_secret(box: TokenBox, endpoint: WebhookEndpoint) -> str:
    return box.open(endpoint.secret)


def recent_deliveries(db: Session, user: User, endpoint_id: int) -> list[DeliveryView]:
    """The endpoint's latest deliveries, newest first, each with every attempt."""
    endpoint = get_endpoint(db, user, endpoint_id)
    rows = repo.recent_deliveries(db, endpoint.id, RECENT_DELIVERIES)
    attempts = repo.attempts_for(db, [delivery.id for delivery, _event in rows])
    return [DeliveryView(d, e, attempts[d.id]) for d, e in rows]


def reencrypt_secrets(db: Session, box: TokenBox) -> int:
    """Re-encrypt every endpoint secret under the newest key; returns how many changed."""
    endpoints = repo.all_endpoints(db)
    for endpoint in endpoints:
        endpoint.secret = box.rotate(endpoint.secret)
    return len(endpoints)


def _check_url(url: str, outbound: OutboundPolicy) -> str:
    return resolve_destination(url, outbound).url


def _check_events(events: list[str]) -> list[str]:
    chosen = [e.strip() for e in events if e.strip()]
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"Unknown event type {unknown[0]}; choose from {', '.join(EVENT_TYPES)}.",
            code="unknown_event_type",
        )
    if not chosen:
        raise InvalidInput("Choose at least one event to send.", code="no_events")
    return [e for e in EVENT_TYPES if e in chosen]


def _check_secret(secret: str) -> str:
    secret = secret.strip()
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise InvalidInput(
            f"A signing secret needs at least {MIN_SECRET_LENGTH} characters; leave it empty "
            "to have one generated.",
            code="weak_secret",
        )
    if len(secret) > 200:
        raise InvalidInput("A signing secret can have at most 200 characters.")
    return secret


def _check_description(description: str) -> str:
    description = description.strip()
    if len(description) > 200:
        raise InvalidInput("The description can have at most 200 characters.")
    return description
