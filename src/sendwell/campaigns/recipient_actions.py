"""What a person can do to recipients of a campaign, one or many at once: pause, resume,
remove, mark as replied, move to another campaign of the same owner.

Each change goes through the sending lifecycle (`models.lifecycle`), so a recipient who cannot
take it (a finished one, say) is named with the reason and the others still change. The
engine's gate sends only to recipients still pending, so a recipient paused, removed or moved
while their step is being claimed gets nothing; a step already handed to the provider is waited
for (`settle_in_flight`) before the action answers, as a campaign's Pause does.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns import recipient_repository as repo
from sendwell.campaigns import repository as campaign_repo
from sendwell.campaigns import service
from sendwell.campaigns.recipient_repository import SORTS, RecipientFilter
from sendwell.campaigns.recipients import RecipientIn, add_recipients
from sendwell.db import session_scope
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.kit.signals import dispatch_work
from sendwell.models import Campaign, CampaignStatus, Enrollment, EnrollmentStatus, User, lifecycle
from sendwell.models.lifecycle import EnrollmentEvent

# One request changes at most this many recipients (a page of the table is 50).
MAX_PER_ACTION = 1000


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    REMOVE = "remove"
    MARK_REPLIED = "mark_replied"
    MOVE = "move"


# action -> (activity kind, what the activity line and the answer say was done)
_DONE = {
    Action.PAUSE: ("recipients_paused", "Paused"),
    Action.RESUME: ("recipients_resumed", "Resumed"),
    Action.REMOVE: ("recipients_removed", "Removed"),
    Action.MARK_REPLIED: ("recipients_marked_replied", "Marked as replied"),
    Action.MOVE: ("recipients_moved", "Moved"),
}


@dataclass(frozen=True)
class Refused:
    id: int
    email: str
    reason: str


@dataclass
class ActionReport:
    action: Action
    changed: list[Enrollment] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    moved_to: Campaign | None = None

    def sentence(self) -> str:
        """What happened, for the page's notice."""
        _kind, verb = _DONE[self.action]
        count = len(self.changed)
        said = f"{verb} {count} recipient{'s' if count != 1 else ''}"
        if self.moved_to is not None:
            said += f" to “{self.moved_to.name}”"
        said += "."
        if self.refused:
            said += " Not changed: " + "; ".join(r.reason for r in self.refused[:5])
            if len(self.refused) > 5:
                said += f"; and {len(self.refused) - 5} more"
            said += "."
        return said


def act(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    action: Action,
    ids: list[int],
    to_campaign_id: int | None = None,
) -> ActionReport:
    """Apply `action` to these recipients of the campaign; those who cannot take it are named
    in the report. Refused outright when none of them changes."""
    campaign = service.get_campaign(db, user, campaign_id)
    unique = sorted(set(ids))
    if not unique:
        raise InvalidInput("Choose at least one recipient.", code="no_recipients")
    if len(unique) > MAX_PER_ACTION:
        raise InvalidInput(
            f"Choose at most {MAX_PER_ACTION:,} recipients at a time.", code="too_many_recipients"
        )
    rows = repo.for_action(db, campaign.id, unique)
    if len(rows) != len(unique):
        raise NotFound("This campaign has no such recipient.", code="unknown_recipient")
    report = ActionReport(action=action)
    if action is Action.MOVE:
        _move(db, user, campaign, rows, to_campaign_id, report)
    else:
        for enrollment in rows:
            try:
                _change(db, campaign, enrollment, action, user)
            except Conflict as refusal:
                report.refused.append(Refused(enrollment.id, enrollment.email, refusal.message))
            else:
                report.changed.append(enrollment)
    if not report.changed:
        first = report.refused[0]
        raise Conflict(first.reason, code="illegal_recipient_transition")
    db.flush()
    _record(db, user, campaign, report)
    if action is not Action.RESUME:
        _complete_if_finished(db, campaign.id)
    if action in (Action.RESUME, Action.MOVE):
        dispatch_work.request(db)  # due again, here or in the campaign moved to
    return report


def _change(
    db: Session, campaign: Campaign, enrollment: Enrollment, action: Action, user: User
) -> None:
    now = utcnow()
    who = user.name or user.email
    if action is Action.PAUSE:
        lifecycle.enroll(enrollment, EnrollmentEvent.PAUSED)
        enrollment.status_reason = f"Paused by {who} on {now:%Y-%m-%d %H:%M} UTC."
    elif action is Action.RESUME:
        started = enrollment.steps_sent > 0
        lifecycle.enroll(
            enrollment,
            EnrollmentEvent.RESUMED if started else EnrollmentEvent.RESUMED_UNSTARTED,
        )
        enrollment.status_reason = ""
        enrollment.next_due_at = _next_due(campaign, enrollment, now)
    elif action is Action.REMOVE:
        lifecycle.enroll(enrollment, EnrollmentEvent.REMOVED)
        enrollment.next_due_at = None
        enrollment.status_reason = f"Removed by {who} on {now:%Y-%m-%d %H:%M} UTC."
    elif action is Action.MARK_REPLIED:
        lifecycle.enroll(enrollment, EnrollmentEvent.MARKED_REPLIED)
        enrollment.next_due_at = None
        enrollment.status_reason = f"Marked as replied by {who} on {now:%Y-%m-%d %H:%M} UTC."
        events.publish(db, events.RecipientFinished(enrollment=enrollment))


def _next_due(campaign: Campaign, enrollment: Enrollment, now: datetime) -> datetime:
    """When a resumed recipient's next step is due: never earlier than now, and a follow-up
    no sooner than its delay after the step before it really went (no burst)."""
    if enrollment.next_due_at is not None:
        return max(enrollment.next_due_at, now)
    if enrollment.steps_sent == 0 or enrollment.last_sent_at is None:
        return now
    step = next((s for s in campaign.steps if s.position == enrollment.steps_sent + 1), None)
    delay = timedelta(minutes=step.delay_minutes) if step is not None else timedelta(0)
    return max(enrollment.last_sent_at + delay, now)


def _move(
    db: Session,
    user: User,
    campaign: Campaign,
    rows: list[Enrollment],
    to_campaign_id: int | None,
    report: ActionReport,
) -> None:
    if to_campaign_id is None:
        raise InvalidInput("Choose the campaign to move them to.", code="no_target_campaign")
    target = service.get_campaign(db, user, to_campaign_id)
    if target.id == campaign.id:
        raise InvalidInput(
            "They are in this campaign already; choose another one.", code="same_campaign"
        )
    if target.owner_id != campaign.owner_id:
        raise InvalidInput(
            "Recipients can only move to another campaign of the same owner.",
            code="other_owner",
        )
    report.moved_to = target
    there = repo.already_in(db, target.id, [e.email for e in rows])
    movable: list[Enrollment] = []
    for enrollment in rows:
        if enrollment.email in there:
            reason = f"{enrollment.email} is already in “{target.name}”"
        elif not lifecycle.enrollment_allows(enrollment.status, EnrollmentEvent.MOVED):
            reason = lifecycle.refusal(enrollment, EnrollmentEvent.MOVED)
        else:
            movable.append(enrollment)
            continue
        report.refused.append(Refused(enrollment.id, enrollment.email, reason))
    if not movable:
        return
    added = add_recipients(
        db,
        user,
        target.id,
        [
            RecipientIn(
                email=e.email,
                first_name=e.first_name,
                last_name=e.last_name,
                company=e.company,
                title=e.title,
                fields={k: str(v) for k, v in (e.fields or {}).items()},
            )
            for e in movable
        ],
        allow_test_domains=True,  # the address was accepted when it was first added
    )
    skipped = {s.email: s.reason for s in added.skipped}
    now = utcnow()
    for enrollment in movable:
        if enrollment.email in skipped:
            report.refused.append(
                Refused(
                    enrollment.id,
                    enrollment.email,
                    f"{enrollment.email}: {skipped[enrollment.email]}",
                )
            )
            continue
        lifecycle.enroll(enrollment, EnrollmentEvent.MOVED)
        enrollment.next_due_at = None
        enrollment.status_reason = (
            f"Moved to “{target.name}” (campaign {target.id}) on {now:%Y-%m-%d %H:%M} UTC."
        )
        report.changed.append(enrollment)


def _record(db: Session, user: User, campaign: Campaign, report: ActionReport) -> None:
    kind, verb = _DONE[report.action]
    emails = ", ".join(e.email for e in report.changed[:10])
    if len(report.changed) > 10:
        emails += f" and {len(report.changed) - 10} more"
    where = f" to “{report.moved_to.name}”" if report.moved_to is not None else ""
    service.record_event(db, campaign.id, kind, actor=user, reason=f"{verb}{where}: {emails}.")
    if report.moved_to is not None:
        service.record_event(
            db,
            report.moved_to.id,
            "recipients_moved_in",
            actor=user,
            reason=f"From “{campaign.name}”: {emails}.",
        )


def _complete_if_finished(db: Session, campaign_id: int) -> None:
    """The last recipient with steps to come was taken out: an active campaign completes."""
    campaign = db.get(Campaign, campaign_id)
    if (
        campaign is not None
        and campaign.status is CampaignStatus.ACTIVE
        and not campaign_repo.has_pending(db, campaign_id)
    ):
        service.complete(db, campaign_id)


def settle_in_flight(
    factory: sessionmaker[Session], enrollment_ids: list[int], *, timeout: float = 30.0
) -> bool:
    """Wait until no send to these recipients is being handed to a provider.

    Called after the action commits, so that when it answers, nothing more goes to them.
    """
    deadline = utcnow() + timedelta(seconds=timeout)
    while utcnow() < deadline:
        with session_scope(factory) as db:
            if repo.in_flight_for(db, enrollment_ids, utcnow()) == 0:
                return True
        threading.Event().wait(0.05)
    return False


def filtered_recipients(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    status: str,
    step: int | None,
    domain: str,
    q: str,
    sort: str,
    offset: int,
    limit: int,
) -> list[Enrollment]:
    """One page of a campaign's recipients that match the filters, in the order asked."""
    campaign = service.get_campaign(db, user, campaign_id)
    chosen = recipient_filter(status=status, step=step, domain=domain, q=q, sort=sort)
    return repo.filtered(db, campaign.id, chosen, offset=offset, limit=limit)


def recipient_filter(
    *, status: str, step: int | None, domain: str, q: str, sort: str
) -> RecipientFilter:
    """The recipients list's filters from query parameters, or a sentence saying which is wrong."""
    chosen_status = None
    if status:
        try:
            chosen_status = EnrollmentStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in EnrollmentStatus)
            raise InvalidInput(
                f"Unknown status “{status}”; use one of {known}.", code="unknown_status"
            ) from None
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key and key not in SORTS:
        raise InvalidInput(
            f"Unknown sort “{sort}”; use {', '.join(SORTS)} (with a leading - for descending).",
            code="unknown_sort",
        )
    return RecipientFilter(
        q=q.strip()[:200],
        status=chosen_status,
        step=step,
        domain=domain.strip()[:255],
        sort=key,
        descending=descending,
    )
