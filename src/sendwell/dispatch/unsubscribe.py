"""One-click unsubscribe: the address joins the suppression list and every sequence stops."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendwell.dispatch import repository as repo
from sendwell.dispatch.outcomes import add_suppression, complete_if_finished
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.models import SuppressionReason, lifecycle
from sendwell.models.lifecycle import EnrollmentEvent


def unsubscribe(db: Session, workspace_id: int, email: str) -> int:
    """Idempotent; returns how many sequences were stopped by this call."""
    add_suppression(
        db,
        workspace_id,
        email,
        SuppressionReason.UNSUBSCRIBED,
        f"Unsubscribed with the link in an email on {utcnow():%Y-%m-%d %H:%M} UTC.",
    )
    pending = repo.enrollments_to_unsubscribe(db, workspace_id, email)
    for enrollment in pending:
        lifecycle.enroll(enrollment, EnrollmentEvent.UNSUBSCRIBED)
        enrollment.next_due_at = None
        enrollment.status_reason = "Unsubscribed with the link in an email."
        events.publish(db, events.RecipientFinished(enrollment=enrollment))
    db.flush()
    for campaign_id in {e.campaign_id for e in pending}:
        complete_if_finished(db, campaign_id)
    return len(pending)
