"""What a Resume will do, worked out before it is done: the plan is computed once, shown as
the preview, and the same computation is what the Resume applies.

A paused campaign's recipients keep their next step's due moment. At Resume, the campaign's
catch-up choice decides what happens to the steps that fell due meanwhile:

- catch up: nothing moves; every overdue step goes now, at the mailbox's pace and in the
  campaign's sending window;
- shift: every pending step moves later by the length of the pause, so the wait each
  recipient had left when the campaign paused is the wait they have left when it resumes;
- skip: a step overdue by more than the skip days is not sent (its ledger row says so, so
  it can never be sent later) and the recipient moves to their next step, due as if the
  skipped one had gone on time (skipped too when that is also overdue by more than the skip
  days). A step that begins a thread is never skipped: the follow-ups in it would answer a
  message the recipient never received.

Nothing here sends: a step moves only later or is skipped, each (recipient, step) keeps its
one ledger row, and the dispatcher's gate, window and pacing still apply to every send.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from sendwell.campaigns import threads
from sendwell.campaigns.catch_up import check_skip_days
from sendwell.dispatch import pacing
from sendwell.dispatch import repository as repo
from sendwell.kit.errors import InvalidInput
from sendwell.models import (
    Campaign,
    CampaignStep,
    CatchUp,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    SendLedger,
    lifecycle,
)
from sendwell.models.lifecycle import EnrollmentEvent, LedgerEvent

# Recipients listed by name in a preview; the counts cover them all.
LISTED = 25
API_LISTED = 1000
CATCH_UP_WORDS = {
    CatchUp.CATCH_UP: "Catch up at the normal pace",
    CatchUp.SHIFT: "Shift every pending step later by the length of the pause",
    CatchUp.SKIP: "Skip steps overdue by more than {days} days",
}
ARRIVED = (EnrollmentStatus.REPLIED, EnrollmentStatus.BOUNCED, EnrollmentStatus.UNSUBSCRIBED)


@dataclass(frozen=True)
class Choice:
    mode: CatchUp
    skip_days: int = 7

    @property
    def words(self) -> str:
        return CATCH_UP_WORDS[self.mode].format(days=self.skip_days)

    @classmethod
    def parse(cls, mode: str | None, skip_days: int | str | None, campaign: Campaign) -> Choice:
        """A choice from a form or a request; what is not given is the campaign's default."""
        try:
            chosen = CatchUp(mode) if mode else campaign.catch_up
        except ValueError:
            raise InvalidInput(
                "Choose how to catch up: catch_up, shift or skip.", code="invalid_catch_up"
            ) from None
        if skip_days in (None, "") or chosen is not CatchUp.SKIP:
            # The skip days matter only to a skip: another choice ignores what was typed.
            return cls(chosen, campaign.catch_up_skip_days)
        return cls(chosen, check_skip_days(skip_days))


@dataclass(frozen=True)
class PlannedSend:
    """A step due when the campaign resumes, with when it is expected to go."""

    enrollment_id: int
    email: str
    step: int
    at: datetime


@dataclass(frozen=True)
class Skipped:
    enrollment_id: int
    email: str
    steps: tuple[int, ...]
    overdue: timedelta
    # The step the recipient moves to and when it is due; none when the skipped step was
    # their last.
    next_step: int | None
    next_due_at: datetime | None


@dataclass(frozen=True)
class Held:
    """A recipient who answered with an automatic reply: nothing goes to them until `until`."""

    enrollment_id: int
    email: str
    until: datetime


@dataclass(frozen=True)
class _Row:
    id: int
    email: str
    steps_sent: int
    due: datetime
    timezone: str = ""  # the recipient's own, when the campaign's recipients carry one


@dataclass
class ResumePlan:
    campaign_id: int
    choice: Choice
    now: datetime
    paused_at: datetime
    due_now: list[PlannedSend]
    later: int
    later_next: datetime | None
    shifted: int
    skipped: list[Skipped]
    arrived: dict[str, int]
    # Recipients held after an automatic reply (out of office), soonest release first.
    held: list[Held] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What the Resume writes: recipient id -> (due before, due after).
    moves: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)

    @property
    def pause_length(self) -> timedelta:
        return max(timedelta(0), self.now - self.paused_at)

    @property
    def first_at(self) -> datetime | None:
        return self.due_now[0].at if self.due_now else None

    @property
    def last_at(self) -> datetime | None:
        return self.due_now[-1].at if self.due_now else None

    @property
    def due_by_step(self) -> dict[int, int]:
        return dict(sorted(Counter(send.step for send in self.due_now).items()))

    @property
    def listed(self) -> list[PlannedSend]:
        return self.due_now[:LISTED]

    def summary(self) -> str:
        """One sentence for the activity log."""
        parts = [f"{self.choice.words}."]
        if self.due_now:
            steps = ", ".join(f"step {s}: {n}" for s, n in self.due_by_step.items())
            parts.append(
                f"{len(self.due_now)} due now ({steps}), the first about "
                f"{_utc(self.first_at)}, the last about {_utc(self.last_at)}."
            )
        else:
            parts.append("Nothing is due now.")
        if self.shifted:
            parts.append(
                f"{self.shifted} pending step{_s(self.shifted)} moved later by "
                f"{_duration(self.pause_length)}."
            )
        if self.skipped:
            count = sum(len(s.steps) for s in self.skipped)
            parts.append(
                f"{count} step{_s(count)} skipped for {len(self.skipped)} "
                f"recipient{_s(len(self.skipped))}."
            )
        return " ".join(parts)

    def payload(self) -> dict[str, object]:
        """The choice and its effect, as the webhook and the API carry it."""
        return {
            "mode": self.choice.mode.value,
            "skip_days": self.choice.skip_days,
            "paused_at": self.paused_at.isoformat(),
            "paused_seconds": int(self.pause_length.total_seconds()),
            "due_now": len(self.due_now),
            "due_now_by_step": {str(k): v for k, v in self.due_by_step.items()},
            "first_at": self.first_at.isoformat() if self.first_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "shifted": self.shifted,
            "skipped_steps": sum(len(s.steps) for s in self.skipped),
            "skipped_recipients": len(self.skipped),
            "held": len(self.held),
        }


def plan(
    db: Session, campaign: Campaign, choice: Choice, *, now: datetime, host_interval: timedelta
) -> ResumePlan:
    """The plan for resuming a paused campaign now with `choice`."""
    paused_at = min(campaign.status_changed_at, now)
    steps = repo.campaign_steps(db, campaign.id)
    rows = [
        _Row(id, email, steps_sent, due, zone if campaign.recipient_time_zones else "")
        for id, email, steps_sent, due, zone in repo.pending_in_due_order(db, campaign.id)
        if due is not None
    ]
    moves: dict[int, tuple[datetime, datetime]] = {}
    skipped: list[Skipped] = []
    if choice.mode is CatchUp.SHIFT:
        shift = max(timedelta(0), now - paused_at)
        if shift:
            moves = {row.id: (row.due, row.due + shift) for row in rows}
    elif choice.mode is CatchUp.SKIP:
        skipped = _skips(rows, steps, choice.skip_days, now)
    skips = {skip.enrollment_id: skip for skip in skipped}
    # A recipient held after an automatic reply gets nothing before the hold ends, whatever
    # their due moment says (the claim skips them).
    held = repo.held_enrollments(db, campaign.id, now)
    hold_ends = {enrollment.id: until for enrollment, until in held}
    due: list[tuple[datetime, int, str, int]] = []
    later: list[datetime] = []
    for row in rows:
        when, step = row.due, row.steps_sent + 1
        if row.id in moves:
            when = moves[row.id][1]
        elif row.id in skips:
            skip = skips[row.id]
            if skip.next_step is None or skip.next_due_at is None:
                continue  # their last step was skipped: they are finished
            when, step = skip.next_due_at, skip.next_step
        when = max(when, hold_ends.get(row.id, when))
        if when <= now:
            due.append((when, row.id, row.email, step))
        else:
            later.append(when)
    zones = {row.id: row.timezone for row in rows}
    if campaign.recipient_time_zones:
        # As the claim does: a recipient outside their own window waits for its opening and
        # those inside it go first, in due order.
        due = [(_opens_for(campaign, zones[i], w, now), i, e, st) for w, i, e, st in due]
    due.sort()
    mailbox = db.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    ahead = _due_elsewhere(db, campaign, now)
    times = _estimate(
        db,
        campaign,
        mailbox,
        [(when, zones[enrollment_id]) for when, enrollment_id, _email, _step in due],
        ahead,
        now=now,
        host_interval=host_interval,
    )
    plan = ResumePlan(
        campaign_id=campaign.id,
        choice=choice,
        now=now,
        paused_at=paused_at,
        due_now=[
            PlannedSend(enrollment_id, email, step, at)
            for (_when, enrollment_id, email, step), at in zip(due, times, strict=True)
        ],
        later=len(later),
        later_next=min(later, default=None),
        shifted=len(moves),
        skipped=skipped,
        arrived=_arrived(db, campaign.id, paused_at),
        held=[Held(enrollment.id, enrollment.email, until) for enrollment, until in held],
        moves=moves,
    )
    plan.notes = _notes(campaign, mailbox, plan, ahead, now)
    return plan


def apply(db: Session, plan: ResumePlan) -> None:
    """Write the plan's moves and skips, each only if the recipient is as planned (a reply
    that arrived in between wins)."""
    if plan.moves:
        repo.move_due_if_unchanged(db, plan.moves)
    for skip in plan.skipped:
        _apply_skip(db, plan, skip)
    db.flush()


def _apply_skip(db: Session, plan: ResumePlan, skip: Skipped) -> None:
    enrollment = db.get(Enrollment, skip.enrollment_id, with_for_update=True)
    if (
        enrollment is None
        or enrollment.status not in repo.PENDING
        or enrollment.next_due_at is None
        or enrollment.steps_sent + 1 != skip.steps[0]
    ):
        return
    existing = {
        row.step_position: row for row in repo.ledger_rows_at_steps(db, enrollment.id, skip.steps)
    }
    if any(row.status is not LedgerStatus.RETRY for row in existing.values()):
        return  # a send of it may be in flight or done: never skip what may have gone
    why = (
        f"Skipped when the campaign resumed on {_utc(plan.now)}: overdue by "
        f"{_duration(skip.overdue)}, more than {plan.choice.skip_days} days."
    )
    for position in skip.steps:
        row = existing.get(position) or SendLedger(
            enrollment_id=enrollment.id,
            campaign_id=enrollment.campaign_id,
            mailbox_id=repo.campaign_mailbox_id(db, enrollment.campaign_id),
            step_position=position,
            tag=uuid.uuid4().hex,
            attempts=0,
        )
        lifecycle.ledger(row, LedgerEvent.SKIPPED)
        row.error, row.lease_until, row.not_before = why, None, None
        db.add(row)
    enrollment.steps_sent = skip.steps[-1]
    if skip.next_step is None:
        lifecycle.enroll(enrollment, EnrollmentEvent.STEPS_RAN_OUT)
        enrollment.next_due_at = None
        enrollment.status_reason = why
    else:
        lifecycle.enroll(enrollment, EnrollmentEvent.STEPS_SKIPPED)
        enrollment.next_due_at = skip.next_due_at


def _skips(
    rows: list[_Row], steps: list[CampaignStep], skip_days: int, now: datetime
) -> list[Skipped]:
    limit = timedelta(days=skip_days)
    by_position = {step.position: step for step in steps}
    found = []
    for row in rows:
        position, due, skipped = row.steps_sent + 1, row.due, []
        while (
            now - due > limit
            and position in by_position
            and not threads.starts_thread(position, by_position[position])
        ):
            skipped.append(position)
            following = by_position.get(position + 1)
            if following is None:
                position = 0
                break
            position, due = position + 1, due + timedelta(minutes=following.delay_minutes)
        if skipped:
            found.append(
                Skipped(
                    row.id,
                    row.email,
                    tuple(skipped),
                    now - row.due,
                    position or None,
                    due if position else None,
                )
            )
    return found


def _due_elsewhere(db: Session, campaign: Campaign, now: datetime) -> list[datetime]:
    """Due moments of steps due now in the mailbox's other active campaigns: they share its
    pace, in due order with this campaign's."""
    return repo.due_in_other_campaigns(db, campaign, now)


def _opens_for(campaign: Campaign, zone: str, due: datetime, now: datetime) -> datetime:
    """When a recipient due at `due` may be sent to, judged at `now` in their own zone."""
    opens = pacing.window_opens(campaign, now, zone)
    return opens if opens > now else due


def _estimate(
    db: Session,
    campaign: Campaign,
    mailbox: Mailbox,
    due: list[tuple[datetime, str]],
    elsewhere: list[datetime],
    *,
    now: datetime,
    host_interval: timedelta,
) -> list[datetime]:
    """When each of `due` is expected to go: the dispatcher's own rules (the window, the
    mailbox's hold, the rolling daily cap, the gap between sends at its average stretch),
    with the other campaigns' due steps taking their turns in due order."""
    # In order of when each may go (`due` is sorted so); the other campaigns' steps take
    # their turns among them by due moment, this campaign's first on a tie.
    queue = sorted(
        [(when, 1, index, "") for index, when in enumerate(elsewhere)]
        + [(when, 0, index, zone) for index, (when, zone) in enumerate(due)]
    )
    times = send_times(
        [(when, campaign, zone) for when, _other, _index, zone in queue],
        mailbox,
        recent_claims(db, mailbox.id, now),
        now=now,
        gap=pace_gap(mailbox, host_interval),
    )
    return [at for at, (_when, other, _i, _z) in zip(times, queue, strict=True) if not other]


def pace_gap(mailbox: Mailbox, host_interval: timedelta) -> timedelta:
    """The gap between two of the mailbox's sends at its average stretch (or its host's
    shortest interval, when that is longer)."""
    return max(
        timedelta(seconds=mailbox.min_gap_seconds * (1 + pacing.GAP_JITTER / 2)), host_interval
    )


def recent_claims(db: Session, mailbox_id: int, now: datetime) -> deque[datetime]:
    """The mailbox's claims over the last day, oldest first: what its rolling cap counts."""
    return deque(sorted(repo.claims_in_last_day(db, mailbox_id, now)))


def send_times(
    queue: list[tuple[datetime, Campaign, str]],
    mailbox: Mailbox,
    recent: deque[datetime],
    *,
    now: datetime,
    gap: timedelta,
) -> list[datetime]:
    """When each (due moment, campaign, recipient's zone or "") of the mailbox's queue, in due
    order, is expected to go: no earlier than it is due, in its campaign's window (in the
    recipient's own zone when given), after the mailbox's hold, under
    the rolling daily cap (`recent` is consumed), one gap after the send before it."""
    cap = max(mailbox.daily_cap, 1)
    moment = max(now, mailbox.send_not_before or now)
    times: list[datetime] = []
    for when, owner, zone in queue:
        moment = max(moment, when)
        while True:
            moment = pacing.window_opens(owner, moment, zone)
            while recent and recent[0] <= moment - pacing.DAY:
                recent.popleft()
            if len(recent) < cap:
                break
            moment = recent[0] + pacing.DAY
        times.append(moment)
        recent.append(moment)
        moment += gap
    return times


def _arrived(db: Session, campaign_id: int, since: datetime) -> dict[str, int]:
    counts = repo.status_counts_since(db, campaign_id, ARRIVED, since)
    return {status.value: counts.get(status, 0) for status in ARRIVED}


def _notes(
    campaign: Campaign, mailbox: Mailbox, plan: ResumePlan, ahead: list[datetime], now: datetime
) -> list[str]:
    notes = []
    if campaign.recipient_time_zones:
        notes.append(
            "Recipients with a time zone of their own get each email within the sending hours "
            "in their zone."
        )
    opens = pacing.campaign_window_opens(campaign, now)
    if opens > now:
        notes.append(
            f"The sending window is closed now; it opens {_local(opens, campaign.timezone)}."
        )
    if mailbox.send_not_before and mailbox.send_not_before > now:
        notes.append(
            f"The account waits until {_utc(mailbox.send_not_before)} before sending again "
            "(its host's limit)."
        )
    if ahead:
        notes.append(
            f"{len(ahead)} step{_s(len(ahead))} from other campaigns on {mailbox.email} "
            f"{'are' if len(ahead) != 1 else 'is'} due too; they share its pace in due order."
        )
    if plan.due_now and plan.last_at and plan.last_at - now >= pacing.DAY:
        notes.append(
            f"The account's daily limit ({mailbox.daily_cap}) and pace spread these over "
            "more than a day."
        )
    return notes


def _utc(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def _local(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone or "UTC"))
    return f"{local:%a} {local.day} {local:%b %H:%M} ({zone or 'UTC'})"


def _duration(length: timedelta) -> str:
    minutes = int(length.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{_s(days)} {hours} h" if hours else f"{days} day{_s(days)}"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def first_send_at(
    db: Session, campaign: Campaign, *, due: datetime, host_interval: timedelta
) -> datetime:
    """When a campaign whose first steps fall due at `due` sends its first email: in its
    sending window, after the mailbox's other campaigns' steps due by then, at the account's
    pace and under its daily cap (the same estimate as a Resume preview's)."""
    mailbox = db.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    ahead = _due_elsewhere(db, campaign, due)
    return _estimate(
        db, campaign, mailbox, [(due, "")], ahead, now=due, host_interval=host_interval
    )[0]
