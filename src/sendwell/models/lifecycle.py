"""The sending lifecycle: how a recipient's status (`enrollments.status`) and a send's status
(`send_ledger.status`) may change, the events that change them, and the one way to do it.

Every change of either status goes through `enroll` / `ledger` (one row, in the ORM) or, for a
statement that changes many rows at once, through `*_sources` / `*_target`, whose WHERE lets
only rows in a legal source status change. A transition that is not in the table is refused
with a `Conflict` saying what the recipient or send is now.

This module imports only the models and the kit, so every feature may use it.
"""

from __future__ import annotations

import enum

from sqlalchemy import ColumnElement

from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict
from sendwell.models import Enrollment, EnrollmentStatus, LedgerStatus, SendLedger

E = EnrollmentStatus
L = LedgerStatus


class EnrollmentEvent(enum.StrEnum):
    """What happens to a recipient."""

    # The engine sent a step and another follows / it was the last one.
    STEP_SENT = "step_sent"
    LAST_STEP_SENT = "last_step_sent"
    # No step is left to send: the campaign was edited down, or a Resume skipped the rest.
    STEPS_RAN_OUT = "steps_ran_out"
    # A Resume skipped overdue steps; the next one is due.
    STEPS_SKIPPED = "steps_skipped"
    # The host bounced a sent step for its own sending limit: it goes again (the first step /
    # a later one), as if never sent.
    FIRST_STEP_UNDONE = "first_step_undone"
    STEP_UNDONE = "step_undone"
    # What the recipient did, read from the mailbox or the unsubscribe link.
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    # Sending to them failed for good (after the retries, or the message could not be built).
    GAVE_UP = "gave_up"
    # A person's actions on the recipient page and the recipients table.
    PAUSED = "paused"
    RESUMED = "resumed"  # some step was sent already
    RESUMED_UNSTARTED = "resumed_unstarted"  # nothing was sent yet
    REMOVED = "removed"
    MARKED_REPLIED = "marked_replied"
    MOVED = "moved"


class LedgerEvent(enum.StrEnum):
    """What happens to one (recipient, step) send."""

    # A worker took the step (a new row, or one back in line).
    CLAIMED = "claimed"
    # The gate passed: the message is being handed to the provider.
    HANDED_OVER = "handed_over"
    # The provider took it (or its copy was found in Sent).
    SENT = "sent"
    # Not sent (or not known to be): the step goes back to its place in line.
    BACK_IN_LINE = "back_in_line"
    # Given up: the recipient is Failed or Bounced.
    GAVE_UP = "gave_up"
    # The host bounced a sent message for its own sending limit: it goes again.
    UNDONE = "undone"
    # A Resume skipped the step as too overdue.
    SKIPPED = "skipped"


PENDING = (E.NOT_STARTED, E.IN_PROGRESS)
# A recipient added to a campaign.
NEW_RECIPIENT = E.NOT_STARTED


def _each(
    sources: tuple[E, ...], event: EnrollmentEvent, to: E
) -> dict[tuple[E, EnrollmentEvent], E]:
    return {(source, event): to for source in sources}


# (status now, event) -> status after. Anything else is refused.
ENROLLMENT_TRANSITIONS: dict[tuple[E, EnrollmentEvent], E] = {
    **_each(PENDING, EnrollmentEvent.STEP_SENT, E.IN_PROGRESS),
    **_each(PENDING, EnrollmentEvent.LAST_STEP_SENT, E.COMPLETED),
    **_each(PENDING, EnrollmentEvent.STEPS_RAN_OUT, E.COMPLETED),
    **_each(PENDING, EnrollmentEvent.STEPS_SKIPPED, E.IN_PROGRESS),
    **_each((*PENDING, E.COMPLETED), EnrollmentEvent.FIRST_STEP_UNDONE, E.NOT_STARTED),
    **_each((*PENDING, E.COMPLETED), EnrollmentEvent.STEP_UNDONE, E.IN_PROGRESS),
    # A paused recipient stays paused; the step waits for the resume.
    (E.PAUSED, EnrollmentEvent.FIRST_STEP_UNDONE): E.PAUSED,
    (E.PAUSED, EnrollmentEvent.STEP_UNDONE): E.PAUSED,
    **_each((*PENDING, E.COMPLETED, E.PAUSED), EnrollmentEvent.REPLIED, E.REPLIED),
    **_each((*PENDING, E.COMPLETED, E.PAUSED), EnrollmentEvent.BOUNCED, E.BOUNCED),
    **_each((*PENDING, E.PAUSED), EnrollmentEvent.UNSUBSCRIBED, E.UNSUBSCRIBED),
    **_each((*PENDING, E.PAUSED), EnrollmentEvent.GAVE_UP, E.FAILED),
    **_each(PENDING, EnrollmentEvent.PAUSED, E.PAUSED),
    (E.PAUSED, EnrollmentEvent.RESUMED): E.IN_PROGRESS,
    (E.PAUSED, EnrollmentEvent.RESUMED_UNSTARTED): E.NOT_STARTED,
    **_each((*PENDING, E.PAUSED, E.FAILED), EnrollmentEvent.REMOVED, E.REMOVED),
    **_each((*PENDING, E.PAUSED, E.COMPLETED, E.FAILED), EnrollmentEvent.MARKED_REPLIED, E.REPLIED),
    **_each((*PENDING, E.PAUSED, E.COMPLETED, E.FAILED), EnrollmentEvent.MOVED, E.MOVED),
}

# (status now, event) -> status after; `None` is a row being created.
LEDGER_TRANSITIONS: dict[tuple[L | None, LedgerEvent], L] = {
    (None, LedgerEvent.CLAIMED): L.CLAIMED,
    (L.RETRY, LedgerEvent.CLAIMED): L.CLAIMED,
    (L.CLAIMED, LedgerEvent.HANDED_OVER): L.UNKNOWN,
    (L.UNKNOWN, LedgerEvent.SENT): L.SENT,
    # A send that outlived its lease was put back in line, then its answer came: it went.
    (L.RETRY, LedgerEvent.SENT): L.SENT,
    (L.CLAIMED, LedgerEvent.BACK_IN_LINE): L.RETRY,
    (L.UNKNOWN, LedgerEvent.BACK_IN_LINE): L.RETRY,
    (L.RETRY, LedgerEvent.BACK_IN_LINE): L.RETRY,
    (L.CLAIMED, LedgerEvent.GAVE_UP): L.FAILED,
    (L.UNKNOWN, LedgerEvent.GAVE_UP): L.FAILED,
    (L.SENT, LedgerEvent.UNDONE): L.RETRY,
    (None, LedgerEvent.SKIPPED): L.SKIPPED,
    (L.RETRY, LedgerEvent.SKIPPED): L.SKIPPED,
}

# The words a refusal uses for a recipient's status.
_SAID = {
    E.NOT_STARTED: "not started",
    E.IN_PROGRESS: "in progress",
    E.COMPLETED: "completed",
    E.REPLIED: "replied",
    E.BOUNCED: "bounced",
    E.UNSUBSCRIBED: "unsubscribed",
    E.FAILED: "failed",
    E.PAUSED: "paused",
    E.REMOVED: "removed",
    E.MOVED: "moved to another campaign",
}
_REFUSED = {
    EnrollmentEvent.PAUSED: "Only a recipient who is not started or in progress can be paused.",
    EnrollmentEvent.RESUMED: "Only a paused recipient can be resumed.",
    EnrollmentEvent.RESUMED_UNSTARTED: "Only a paused recipient can be resumed.",
    EnrollmentEvent.REMOVED: "A recipient who already finished cannot be removed.",
    EnrollmentEvent.MARKED_REPLIED: "This recipient cannot be marked as replied.",
    EnrollmentEvent.MOVED: "This recipient cannot be moved to another campaign.",
}


def enrollment_allows(status: E, event: EnrollmentEvent) -> bool:
    """Whether `event` may happen to a recipient in `status`."""
    return (status, event) in ENROLLMENT_TRANSITIONS


def enroll(enrollment: Enrollment, event: EnrollmentEvent) -> E:
    """Change a recipient's status for `event` and stamp when; refused if not in the table."""
    to = ENROLLMENT_TRANSITIONS.get((enrollment.status, event))
    if to is None:
        raise Conflict(refusal(enrollment, event), code="illegal_recipient_transition")
    if to is not enrollment.status:
        enrollment.status = to
        enrollment.status_changed_at = utcnow()
    return to


def refusal(enrollment: Enrollment, event: EnrollmentEvent) -> str:
    """The sentence that refuses `event` for this recipient as they are now."""
    said = _REFUSED.get(event, f"A recipient cannot go from {enrollment.status} on {event}.")
    return f"{said} {enrollment.email} is {_SAID[enrollment.status]}."


def enrollment_sources(event: EnrollmentEvent) -> tuple[E, ...]:
    """The statuses `event` may start from (for a WHERE over many recipients)."""
    return tuple(s for (s, e) in ENROLLMENT_TRANSITIONS if e is event)


def enrollment_may(event: EnrollmentEvent) -> ColumnElement[bool]:
    """WHERE clause: the recipient's status lets `event` happen."""
    return Enrollment.status.in_(enrollment_sources(event))


def ledger_allows(status: L | None, event: LedgerEvent) -> bool:
    """Whether `event` may happen to a send in `status` (`None`: a row being created)."""
    return (status, event) in LEDGER_TRANSITIONS


def ledger(row: SendLedger, event: LedgerEvent) -> L:
    """Change a send's status for `event`; refused if not in the table."""
    current: L | None = row.status
    to = LEDGER_TRANSITIONS.get((current, event))
    if to is None:
        raise Conflict(
            f"A send that is {current or 'new'} cannot be {event.replace('_', ' ')}.",
            code="illegal_send_transition",
        )
    row.status = to
    return to


def ledger_sources(event: LedgerEvent) -> tuple[L, ...]:
    """The existing statuses `event` may start from (for a WHERE over many sends)."""
    return tuple(s for (s, e) in LEDGER_TRANSITIONS if e is event and s is not None)


def ledger_target(event: LedgerEvent) -> L:
    """The one status `event` leads to, for a statement that changes many sends at once."""
    targets = {to for (_s, e), to in LEDGER_TRANSITIONS.items() if e is event}
    if len(targets) != 1:
        raise ValueError(f"{event} does not lead to one status")
    return targets.pop()


def ledger_may(event: LedgerEvent) -> ColumnElement[bool]:
    """WHERE clause: the send's status lets `event` happen."""
    return SendLedger.status.in_(ledger_sources(event))
