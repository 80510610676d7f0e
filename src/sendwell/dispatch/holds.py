"""Auto-reply holds: a recipient whose mail host answers with an automatic reply (out of
office, vacation responder) gets no email for the campaign's `auto_reply_hold_days`.

The hold is not a reply (the sequence goes on) and not ignored either: the recipient's next
step becomes due no earlier than the hold's end, the claim skips anyone still held however
their due time was set (a catch-up, a retry), and once the hold has ended the next step goes
at the mailbox's normal pace — one claim, one send, never twice. Each hold and each end is
a line in the campaign's activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns.service import record_event
from sendwell.db import session_scope
from sendwell.dispatch import repository as repo
from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.models import Campaign, Enrollment
from sendwell.providers.base import InboundMessage

log = get_logger(__name__)


def hold_for_auto_reply(db: Session, enrollment_ids: set[int], message: InboundMessage) -> int:
    """Hold the recipients an automatic reply answers for; returns how many were held.

    The hold runs from when the auto-reply arrived. Reading the same auto-reply again (a
    mailbox read afresh) changes nothing; a later one extends the hold.
    """
    now = utcnow()
    held = 0
    for enrollment_id in sorted(enrollment_ids):
        enrollment = db.get(Enrollment, enrollment_id)
        if enrollment is None or enrollment.status not in repo.PENDING:
            continue
        campaign = db.get(Campaign, enrollment.campaign_id)
        if campaign is None or campaign.auto_reply_hold_days <= 0:
            continue
        arrived = min(message.received_at, now)
        until = arrived + timedelta(days=campaign.auto_reply_hold_days)
        if until <= now or (enrollment.held_until is not None and enrollment.held_until >= until):
            continue
        _hold(db, enrollment, until, arrived, message.subject)
        held += 1
    return held


def _hold(
    db: Session, enrollment: Enrollment, until: datetime, arrived: datetime, subject: str
) -> None:
    summary = " ".join(subject.split())[:200] or "no subject"
    enrollment.held_until = until
    enrollment.hold_reason = f"Automatic reply on {_when(arrived)}: “{summary}”."
    if enrollment.next_due_at is not None and enrollment.next_due_at < until:
        enrollment.next_due_at = until
    record_event(
        db,
        enrollment.campaign_id,
        "recipient_held",
        reason=f"{enrollment.email} answered with an automatic reply (“{summary}”); no email "
        f"to them until {_when(until)}.",
    )
    log.info("recipient_held", enrollment_id=enrollment.id, until=until.isoformat())


def still_held(enrollment: Enrollment, now: datetime) -> bool:
    """True while the recipient is held; their next step then waits for the hold's end."""
    until = enrollment.held_until
    if until is None or until <= now:
        return False
    if enrollment.next_due_at is None or enrollment.next_due_at < until:
        enrollment.next_due_at = until
    return True


def release_ended_holds(factory: sessionmaker[Session]) -> int:
    """Clear the holds that have ended, each once however many workers look, and note the
    end in the activity of recipients still waiting for a step; returns how many."""
    now = utcnow()
    released = 0
    with session_scope(factory) as db:
        for enrollment in repo.ended_holds(db, now):
            until = enrollment.held_until
            if until is None or not repo.release_hold(db, enrollment.id, until):
                continue
            released += 1
            if enrollment.status in repo.PENDING:
                due = enrollment.next_due_at
                record_event(
                    db,
                    enrollment.campaign_id,
                    "hold_ended",
                    reason=f"{enrollment.email}'s hold after an automatic reply ended"
                    + (f"; their next email is due {_when(due)}." if due else "."),
                )
    return released


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
