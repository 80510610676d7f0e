"""Domain events: how one feature's change moves another without importing it.

A feature publishes a typed event inside its unit of work (`publish(db, event)`); every
subscriber to that event type is called at once, in the same session and transaction, in the
order it subscribed. What a subscriber writes therefore commits or rolls back with the change
that caused it (a mailbox that breaks and the pause of its campaigns are one transaction), and
an exception in a subscriber fails the change itself.

Subscriptions are made in one place, `sendwell.wiring.register()`, called by the app, the
CLI and the tests before any unit of work runs; a publish before that is a programming error
and raises, so a missing subscriber can never silently drop a pause or a webhook. Features
never subscribe as a side effect of being imported.

Publishing order is part of the behaviour: an event's subscribers run in subscription order,
so the wiring decides, for instance, that a mailbox's webhook is written before the pauses of
its campaigns (and theirs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    # Type names only: the ground floor's models, never loaded by this module at run time.
    from sendwell.models import (
        Enrollment,
        Mailbox,
        MailboxEventKind,
        MailboxStatus,
        PauseReason,
        Reply,
    )


@dataclass(frozen=True)
class MailboxStatusChanged:
    """A mailbox transition was recorded (connected, reauth required, reconnected, removed)."""

    mailbox: Mailbox
    kind: MailboxEventKind
    previous: MailboxStatus
    reason: str
    code: str


@dataclass(frozen=True)
class MailboxExpiring:
    """A mailbox's connection is expected to end soon (once per cause and date)."""

    mailbox: Mailbox
    expires_at: datetime
    reason: str
    why: str
    action: str


@dataclass(frozen=True)
class WorkspaceExpiring:
    """Something every account of a workspace depends on is expected to end soon (the
    Microsoft client secret), once per cause and date."""

    workspace_id: int
    expires_at: datetime
    reason: str
    why: str
    action: str


@dataclass(frozen=True)
class MailboxDomainHealthWorsened:
    """A check of the mailbox's sending domain got worse; `checks` as the API shows them."""

    mailbox: Mailbox
    domain: str
    checks: list[dict[str, Any]]


@dataclass(frozen=True)
class CampaignStatusChanged:
    """A campaign history line was recorded: created, edited, started, paused, resumed,
    completed, reopened, archived… (`kind`); `data` adds to what subscribers publish. A pause
    names its `pause_reason`, and `detail` is what happened in words, beyond the reason's own
    sentence (the bounce rate that paused it)."""

    campaign_id: int
    kind: str
    reason: str
    data: dict[str, Any] | None = field(default=None)
    pause_reason: PauseReason | None = None
    detail: str = ""


@dataclass(frozen=True)
class RecipientFinished:
    """A send's outcome ended a recipient's sequence (replied, bounced, unsubscribed), with
    the enrollment already in its new status; `reply` is the reply read from the mailbox
    that ended it, when one did."""

    enrollment: Enrollment
    reply: Reply | None = None


@dataclass(frozen=True)
class WebhookEndpointDisabled:
    """The webhook deliverer switched an endpoint off after it failed for the whole retry
    window; `reason` is what its page shows."""

    workspace_id: int
    url: str
    reason: str


Event = (
    MailboxStatusChanged
    | MailboxExpiring
    | WorkspaceExpiring
    | MailboxDomainHealthWorsened
    | CampaignStatusChanged
    | RecipientFinished
    | WebhookEndpointDisabled
)
E = TypeVar("E", bound=Event)
Subscriber = Callable[[Session, Any], None]

_subscribers: dict[type[Any], list[Subscriber]] = {}
_wired = False


class NotWired(RuntimeError):
    """An event was published before `sendwell.wiring.register()` ran."""


def subscribe(event_type: type[E], subscriber: Callable[[Session, E], None]) -> None:
    """Call `subscriber(db, event)` for every `event_type` published from now on (once,
    however often the same function subscribes)."""
    listeners = _subscribers.setdefault(event_type, [])
    if subscriber not in listeners:
        listeners.append(subscriber)


def mark_wired() -> None:
    """Every feature has subscribed: publishing is allowed from now on."""
    global _wired
    _wired = True


def publish(db: Session, event: Event) -> None:
    """Tell every subscriber of this event's type, in this unit of work."""
    if not _wired:
        raise NotWired(
            f"{type(event).__name__} published before sendwell.wiring.register() ran: "
            "its subscribers would be skipped."
        )
    for subscriber in list(_subscribers.get(type(event), ())):
        subscriber(db, event)


def subscribers_of(event_type: type[Any]) -> list[Subscriber]:
    """Who hears an event type, in calling order (for the wiring's tests and the docs)."""
    return list(_subscribers.get(event_type, ()))
