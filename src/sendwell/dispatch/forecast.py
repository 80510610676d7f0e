"""When the next email really goes, or why none is coming.

A recipient's `next_due_at` says when their next step falls due, not when it will be sent:
the dispatcher still waits for the campaign's sending window, the mailbox's host hold, its
rolling daily cap and its gap between sends, shared with the other active campaigns on the
same mailbox in due order — and sends nothing at all while the campaign is paused. The
forecast runs the dispatcher's own rules forward over the mailbox's queue with the pieces
the Resume preview uses (`dispatch/resume.py`), so the time shown is the time the dispatcher
will pick (the gap at its average stretch), and every other case says why in words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from sendwell.dispatch import pacing
from sendwell.dispatch import repository as repo
from sendwell.dispatch import resume as pace
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    MailboxStatus,
)

# The forecast reads at most this many queued steps of a mailbox (in due order); anything
# further back is shown as "after more than this many emails".
QUEUE_LIMIT = 5_000
PAUSED_WORDS = "Paused — resumes when you click Resume"
DRAFT_WORDS = "Not started — starts when you click Start"
ARCHIVED_WORDS = "Archived — nothing is sent"
RECONNECT_WORDS = "Waiting for the sending account to be reconnected"
FINISHED_LABELS = {
    EnrollmentStatus.COMPLETED: "Completed",
    EnrollmentStatus.REPLIED: "Replied",
    EnrollmentStatus.BOUNCED: "Bounced",
    EnrollmentStatus.UNSUBSCRIBED: "Unsubscribed",
    EnrollmentStatus.FAILED: "Failed",
    EnrollmentStatus.REMOVED: "Removed",
    EnrollmentStatus.MOVED: "Moved",
}
# A recipient paused on their own gets nothing until someone resumes them.
RECIPIENT_PAUSED_WORDS = "Paused — resumes when you resume this recipient"
CAMPAIGN_WORDS = {
    CampaignStatus.DRAFT: DRAFT_WORDS,
    CampaignStatus.PAUSED: PAUSED_WORDS,
    CampaignStatus.COMPLETED: "Completed",
    CampaignStatus.ARCHIVED: ARCHIVED_WORDS,
}

# The queue is read in due order this many steps first, then four times as many at each
# further read (up to QUEUE_LIMIT), until every step a page asks about has its place.
FIRST_READ = 100
GROWTH = 4

HostInterval = Callable[[Mailbox], timedelta]
# Queues already worked out in this request, per mailbox: (horizon, queue). A queue worked out
# to a later horizon holds the same times for every step due before it, so one page asking
# for its recipients and for its campaign reads the mailbox's queue once.
Queues = dict[int, tuple[datetime, "_Line"]]


def no_host_interval(_mailbox: Mailbox) -> timedelta:
    return timedelta(0)


@dataclass(frozen=True)
class Forecast:
    """The next email: when it is expected (`at`, none when nothing is coming), why it
    waits or why there is none (`words`), and the recipient's status as shown."""

    at: datetime | None
    words: str
    label: str = ""
    badge: str = ""

    @property
    def text(self) -> str:
        """One line for a table cell: the time, then the reason it waits, if any."""
        if self.at is None:
            return self.words
        when = f"{self.at:%Y-%m-%d %H:%M} UTC"
        return f"{when} · {self.words}" if self.words else when

    def payload(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "words": self.words,
            "text": self.text,
            "label": self.label,
            "badge": self.badge,
        }


@dataclass(frozen=True)
class _Queued:
    enrollment_id: int
    campaign_id: int
    due: datetime
    at: datetime
    ahead: int


@dataclass(frozen=True)
class _Line:
    """The start of a mailbox's queue, each step with when it is expected to go (`spots`, by
    recipient id, in queue order) and each campaign's first step in it (`firsts`). `whole`:
    every step due by the horizon is in it, or as many as QUEUE_LIMIT; otherwise it holds
    only the steps due before the first one it has not read, whose times are final (a send's
    time depends only on the steps ahead of it)."""

    spots: dict[int, _Queued]
    firsts: dict[int, _Queued]
    whole: bool

    def has(self, enrollment_ids: Iterable[int] = (), campaign_ids: Iterable[int] = ()) -> bool:
        """Whether these recipients and campaigns have their place here, or never will in
        the first QUEUE_LIMIT steps."""
        return self.whole or (
            all(e in self.spots for e in enrollment_ids)
            and all(c in self.firsts for c in campaign_ids)
        )


def for_enrollments(
    db: Session,
    campaign: Campaign,
    enrollments: Iterable[Enrollment],
    *,
    now: datetime,
    host_interval: HostInterval = no_host_interval,
    queues: Queues | None = None,
) -> dict[int, Forecast]:
    """Each recipient's next email in `campaign`, by recipient id."""
    rows = list(enrollments)
    result: dict[int, Forecast] = {}
    waiting: list[Enrollment] = []
    for enrollment in rows:
        if enrollment.status is EnrollmentStatus.PAUSED:
            result[enrollment.id] = Forecast(
                None, RECIPIENT_PAUSED_WORDS, _paused_label(enrollment), "e-paused"
            )
        elif enrollment.status not in (EnrollmentStatus.NOT_STARTED, EnrollmentStatus.IN_PROGRESS):
            finished = FINISHED_LABELS.get(enrollment.status) or enrollment.status.value.title()
            result[enrollment.id] = Forecast(
                None, finished, finished, f"e-{enrollment.status.value}"
            )
        elif campaign.status is not CampaignStatus.ACTIVE:
            result[enrollment.id] = _idle(campaign, enrollment)
        else:
            waiting.append(enrollment)
    if not waiting:
        return result
    mailbox = db.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    label = {e.id: _pending_label(e) for e in waiting}
    if mailbox.status is not MailboxStatus.CONNECTED:
        for e in waiting:
            result[e.id] = Forecast(None, RECONNECT_WORDS, *label[e.id])
        return result
    dues = {e.id: _due(e, now) for e in waiting}
    queued = _queue(
        db,
        mailbox,
        max(dues.values()),
        now=now,
        host_interval=host_interval,
        queues=queues,
        enrollment_ids=list(dues),
    )
    for e in waiting:
        spot = queued.spots.get(e.id)
        words = _why(campaign, mailbox, e, spot, dues[e.id], now=now)
        at = spot.at if spot else None
        if spot is None:
            words = f"After more than {QUEUE_LIMIT:,} emails queued on {mailbox.email}"
        result[e.id] = Forecast(at, words, *label[e.id])
    return result


def for_campaigns(
    db: Session,
    campaigns: list[Campaign],
    *,
    now: datetime,
    host_interval: HostInterval = no_host_interval,
    queues: Queues | None = None,
) -> dict[int, Forecast]:
    """Each campaign's next email (its earliest queued recipient's), by campaign id."""
    result = {c.id: Forecast(None, CAMPAIGN_WORDS.get(c.status, "")) for c in campaigns}
    active = [c for c in campaigns if c.status is CampaignStatus.ACTIVE]
    if not active:
        return result
    firsts = repo.first_due_by_campaign(db, [c.id for c in active])
    by_mailbox: dict[int, list[Campaign]] = {}
    for campaign in active:
        if firsts.get(campaign.id) is None:
            result[campaign.id] = Forecast(None, "Waiting for its last emails to be confirmed")
            continue
        by_mailbox.setdefault(campaign.mailbox_id, []).append(campaign)
    for mailbox_id, group in by_mailbox.items():
        mailbox = db.get(Mailbox, mailbox_id)
        assert mailbox is not None
        if mailbox.status is not MailboxStatus.CONNECTED:
            for campaign in group:
                result[campaign.id] = Forecast(None, RECONNECT_WORDS)
            continue
        # What goes before each campaign's first step is due no later than it: the queue is
        # read up to the latest of those, never further.
        horizon = max(firsts[c.id] or now for c in group)
        while True:
            queued = _queue(
                db,
                mailbox,
                horizon,
                now=now,
                host_interval=host_interval,
                queues=queues,
                campaign_ids=[c.id for c in group],
            )
            # A first step held after an auto-reply until later than the horizon may have
            # steps due before its hold ends ahead of it, unread: read on to the hold's end.
            held = [f.due for c in group if (f := queued.firsts.get(c.id)) and f.due > horizon]
            if not held:
                break
            horizon = max(held)
        for campaign in group:
            first = queued.firsts.get(campaign.id)
            if first is None:
                words = f"After more than {QUEUE_LIMIT:,} emails queued on {mailbox.email}"
                result[campaign.id] = Forecast(None, words)
                continue
            words = _why(campaign, mailbox, None, first, max(first.due, now), now=now)
            result[campaign.id] = Forecast(first.at, words)
    return result


def _idle(campaign: Campaign, enrollment: Enrollment) -> Forecast:
    """A recipient still waiting for a step in a campaign that sends nothing now."""
    if campaign.status is CampaignStatus.PAUSED:
        return Forecast(None, PAUSED_WORDS, _paused_label(enrollment), "e-paused")
    if campaign.status is CampaignStatus.ARCHIVED:
        return Forecast(None, ARCHIVED_WORDS, "Archived", "archived")
    if campaign.status is CampaignStatus.DRAFT:
        return Forecast(None, DRAFT_WORDS, "Not Started", "e-not_started")
    # A completed campaign has nobody waiting; a row seen mid-change says it plainly.
    return Forecast(None, "Completed", "Completed", "e-completed")


def _paused_label(enrollment: Enrollment) -> str:
    if enrollment.steps_sent:
        return f"Paused · step {enrollment.steps_sent} sent"
    return "Paused · not started"


def _pending_label(enrollment: Enrollment) -> tuple[str, str]:
    if enrollment.status is EnrollmentStatus.IN_PROGRESS:
        return f"In Progress · step {enrollment.steps_sent}", "e-in_progress"
    return "Not Started", "e-not_started"


def _due(enrollment: Enrollment, now: datetime) -> datetime:
    due = enrollment.next_due_at or now
    if enrollment.held_until is not None:
        due = max(due, enrollment.held_until)
    return max(due, now)


def _queue(
    db: Session,
    mailbox: Mailbox,
    horizon: datetime,
    *,
    now: datetime,
    host_interval: HostInterval,
    queues: Queues | None = None,
    enrollment_ids: Iterable[int] = (),
    campaign_ids: Iterable[int] = (),
) -> _Line:
    """The steps queued on the mailbox (its active campaigns' pending recipients) due by
    `horizon`, with when the dispatcher is expected to send each: read as far as it takes
    to place these recipients and each of these campaigns' first step."""
    wanted, first_of = list(enrollment_ids), list(campaign_ids)
    if queues is not None and mailbox.id in queues:
        known_horizon, known = queues[mailbox.id]
        if known_horizon >= horizon and known.has(wanted, first_of):
            return known
    limit = FIRST_READ
    while True:
        line = _work_out_queue(db, mailbox, horizon, limit, now=now, host_interval=host_interval)
        if line.has(wanted, first_of):
            break
        limit = min(limit * GROWTH, QUEUE_LIMIT)
    if queues is not None:
        queues[mailbox.id] = (horizon, line)
    return line


def _work_out_queue(
    db: Session,
    mailbox: Mailbox,
    horizon: datetime,
    limit: int,
    *,
    now: datetime,
    host_interval: HostInterval,
) -> _Line:
    rows = repo.queued_on_mailbox(db, mailbox.id, horizon, limit)
    whole = len(rows) < limit or limit >= QUEUE_LIMIT
    # A recipient held after an automatic reply is claimed no earlier than the hold's end.
    line = sorted(
        (max(due, held or due), eid, cid, zone)
        for eid, cid, due, held, zone in rows
        if due is not None
    )
    if not whole:
        # Each step not read yet comes after the last one read in (due, id) order, and no
        # hold brings it earlier: the steps read that sort up to that one are the start of
        # the queue, in its order. A held step sorting later waits for a further read.
        last_id, _cid, last_due, _held, _zone = rows[-1]
        assert last_due is not None
        line = [row for row in line if (row[0], row[1]) <= (last_due, last_id)]
    campaigns = repo.campaigns_by_id(db, sorted({cid for _due, _eid, cid, _zone in line}))
    # A campaign whose recipients carry their own zones sends to each in their own hours.
    times = pace.send_times(
        [
            (due, campaigns[cid], zone if campaigns[cid].recipient_time_zones else "")
            for due, _eid, cid, zone in line
        ],
        mailbox,
        pace.recent_claims(db, mailbox.id, now),
        now=now,
        gap=pace.pace_gap(mailbox, host_interval(mailbox)),
    )
    spots: dict[int, _Queued] = {}
    firsts: dict[int, _Queued] = {}
    for ahead, ((due, eid, cid, _zone), at) in enumerate(zip(line, times, strict=True)):
        spot = spots[eid] = _Queued(eid, cid, due, at, ahead)
        # Times never go back along the queue: a campaign's first step in it goes first.
        firsts.setdefault(cid, spot)
    return _Line(spots, firsts, whole)


def _why(
    campaign: Campaign,
    mailbox: Mailbox,
    enrollment: Enrollment | None,
    spot: _Queued | None,
    due: datetime,
    *,
    now: datetime,
) -> str:
    """Why the next email waits beyond its due moment, in words (empty when it does not)."""
    if enrollment is not None and enrollment.held_until and enrollment.held_until > now:
        return f"Held after an auto-reply until {_local(enrollment.held_until, campaign.timezone)}"
    opens = pacing.window_opens(campaign, due)
    if opens > due:
        return f"Waiting for the sending window (opens {_local(opens, campaign.timezone)})"
    if spot is None:
        return ""
    late = spot.at - timedelta(seconds=1)
    if spot.at - due > timedelta(seconds=1):
        if not spot.ahead:
            return f"At {mailbox.email}'s pace (its daily limit and gap between emails)"
        ahead = f"{spot.ahead} email{'' if spot.ahead == 1 else 's'} ahead on {mailbox.email}"
        if pacing.window_opens(campaign, late) > late:
            return f"{ahead}, then the sending window opens"
        return f"{ahead} at its pace"
    if due <= now:
        return "Due now"
    return ""


def _local(moment: datetime, zone: str) -> str:
    """E.g. "Mon 09:00 Europe/Paris" (with the date when it is not within the week)."""
    name = zone or "UTC"
    local = moment.astimezone(ZoneInfo(name))
    return f"{local:%a} {local.day} {local:%b %H:%M} {name}"
