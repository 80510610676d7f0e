"""Who is emailed of which change: the notifications hear the other features' events.

Each notice is composed in the unit of work that made the change, from what it left, and is
sent once that commits (`kit.notices.send_after_commit`): a change that rolls back tells
nobody, and a slow mail server holds up no transaction. Deduplication is the change's own:
a mailbox needs reauthentication once until it is reconnected, an expiry warning is a unique
row that a second process fails to write, a campaign is paused once until resumed, and a
webhook endpoint is switched off once until enabled again.

The notifications subscribe after campaigns, so a broken mailbox's notice counts the
campaigns its break has just paused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from sendwell.accounts.repository import admin_emails
from sendwell.kit import events
from sendwell.kit.notices import outgoing_of, send_after_commit
from sendwell.mailboxes.repository import paused_counts_by_mailbox
from sendwell.models import Campaign, MailboxEventKind, PauseReason, User


def register() -> None:
    """Subscribe the notifications to the changes people are told of by email."""
    events.subscribe(events.MailboxStatusChanged, reconnect_needed)
    events.subscribe(events.MailboxExpiring, mailbox_expiring)
    events.subscribe(events.WorkspaceExpiring, workspace_expiring)
    events.subscribe(events.CampaignStatusChanged, paused_for_bounces)
    events.subscribe(events.WebhookEndpointDisabled, webhook_endpoint_disabled)


def reconnect_needed(db: Session, event: events.MailboxStatusChanged) -> None:
    """A mailbox started needing reauthentication: its owner is asked to reconnect it."""
    outgoing = outgoing_of(db)
    if outgoing is None or event.kind is not MailboxEventKind.REAUTH_REQUIRED:
        return
    mailbox = event.mailbox
    db.flush()
    owner = db.get(User, mailbox.owner_id)
    if owner is None or not owner.email:
        return
    paused = paused_counts_by_mailbox(db, [mailbox.id]).get(mailbox.id, 0)
    waiting = (
        f"{paused} campaign{'s are' if paused != 1 else ' is'} paused until you "
        "reconnect it and resume."
        if paused
        else "Nothing can be sent from it."
    )
    send_after_commit(
        db,
        outgoing,
        owner.email,
        f"Action needed: reconnect {mailbox.email} in Sendwell",
        f"Sendwell can no longer use {mailbox.email}. {waiting}\n\n"
        f"Why: {mailbox.status_reason}\n\n"
        f"Reauthenticate it on the Settings tab: {outgoing.base_url}/messaging/settings\n"
        "After reconnecting, resume the paused campaigns; they continue from where they "
        "left off.\n",
    )


def mailbox_expiring(db: Session, event: events.MailboxExpiring) -> None:
    """A mailbox's connection is expected to end: its owner is told what prevents it."""
    outgoing = outgoing_of(db)
    if outgoing is None:
        return
    mailbox = event.mailbox
    owner = db.get(User, mailbox.owner_id)
    if owner is None:
        return
    send_after_commit(
        db,
        outgoing,
        owner.email,
        f"Heads-up: {mailbox.email} will disconnect from Sendwell on {event.expires_at:%Y-%m-%d}",
        f"Sendwell expects the connection to {mailbox.email} to end on "
        f"{event.expires_at:%Y-%m-%d %H:%M} UTC.\n\nWhy: {event.why}\n\n"
        f"What prevents it: {event.action}\n\n"
        f"Your accounts: {outgoing.base_url}/messaging/settings\n"
        "If it does end, its campaigns pause and resume from where they left off after you "
        "reauthenticate.\n",
    )


def workspace_expiring(db: Session, event: events.WorkspaceExpiring) -> None:
    """What every account depends on is expected to end: every admin is told."""
    _tell_admins(
        db,
        event.workspace_id,
        f"Action needed by {event.expires_at:%Y-%m-%d}: the Microsoft client secret expires",
        lambda base_url: (
            f"On {event.expires_at:%Y-%m-%d %H:%M} UTC: {event.why}\n\nWhat prevents it: "
            f"{event.action}\n\n"
            f"Every account's expected expiry: {base_url}/messaging/expiry\n"
        ),
    )


def paused_for_bounces(db: Session, event: events.CampaignStatusChanged) -> None:
    """The bounce-rate guard paused a campaign: its owner is told why and what to check."""
    outgoing = outgoing_of(db)
    if (
        outgoing is None
        or event.kind != "paused"
        or event.pause_reason is not PauseReason.BOUNCE_RATE
    ):
        return
    campaign = db.get(Campaign, event.campaign_id)
    owner = db.get(User, campaign.owner_id) if campaign is not None else None
    if campaign is None or owner is None:
        return
    send_after_commit(
        db,
        outgoing,
        owner.email,
        f"Paused: too many emails of “{campaign.name}” bounced",
        f"Sendwell paused your campaign “{campaign.name}”: {event.detail}\n\n"
        "Many bounces mean the list has old or mistyped addresses, and mail hosts lower the "
        "reputation of a sender whose mail bounces, so your next emails may land in spam.\n\n"
        f"Check the bounced recipients: {outgoing.base_url}/campaigns/{campaign.id}#recipients\n"
        "Then resume the campaign; it continues from where it left off, and the bounce rate "
        "is measured afresh from then on.\n",
    )


def webhook_endpoint_disabled(db: Session, event: events.WebhookEndpointDisabled) -> None:
    """The deliverer switched an endpoint off: every admin is told how to switch it back."""
    _tell_admins(
        db,
        event.workspace_id,
        "Sendwell disabled a webhook endpoint",
        lambda base_url: (
            f"Sendwell stopped sending webhooks to {event.url}.\n\n{event.reason}\n\n"
            "Fix the endpoint, then enable it again on the Webhooks tab (events that happen "
            f"while it is switched off are not sent to it): {base_url}/messaging/webhooks\n"
        ),
    )


def _tell_admins(db: Session, workspace_id: int, subject: str, body: Callable[[str], str]) -> None:
    """The same email to every admin of the workspace, once the change commits; `body` is
    given the server's base URL."""
    outgoing = outgoing_of(db)
    if outgoing is None:
        return
    for address in admin_emails(db, workspace_id):
        send_after_commit(db, outgoing, address, subject, body(outgoing.base_url))
