"""What campaigns do when another feature changes: a mailbox that breaks, is removed or is
reauthenticated pauses its active campaigns, in the mailbox change's own transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendwell.campaigns.service import pause_campaigns_for_mailbox
from sendwell.kit import events
from sendwell.models import MailboxEventKind, PauseReason

# A mailbox transition that pauses the mailbox's active campaigns, and the pause's reason.
PAUSES_CAMPAIGNS = {
    MailboxEventKind.REAUTH_REQUIRED: PauseReason.MAILBOX_REAUTH_REQUIRED,
    MailboxEventKind.DISCONNECTED: PauseReason.MAILBOX_DISCONNECTED,
    MailboxEventKind.REAUTHENTICATED: PauseReason.MAILBOX_REAUTHENTICATED,
}


def register() -> None:
    """Subscribe campaigns to the mailbox changes that pause them."""
    events.subscribe(events.MailboxStatusChanged, pause_on_mailbox_change)


def pause_on_mailbox_change(db: Session, event: events.MailboxStatusChanged) -> None:
    """Pause the mailbox's active campaigns when its change calls for it."""
    pause_reason = PAUSES_CAMPAIGNS.get(event.kind)
    if pause_reason is None:
        return
    # Same transaction as the mailbox change: no send can slip between the two.
    db.flush()
    pause_campaigns_for_mailbox(db, event.mailbox.id, pause_reason)
