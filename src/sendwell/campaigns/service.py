"""Campaign rules: authoring, the status machine with its events, recipients, validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from sendwell.campaigns import merge_check, templates, threads, validation
from sendwell.campaigns import repository as repo
from sendwell.campaigns.catch_up import check_skip_days
from sendwell.campaigns.guards import Guards, apply_guards, guards_of
from sendwell.campaigns.schedule import Schedule
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.kit.signals import dispatch_work
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    CampaignStep,
    CatchUp,
    EnrollmentStatus,
    Mailbox,
    PauseReason,
    User,
)

MAX_STEPS = 20
MAX_DELAY_MINUTES = 365 * 24 * 60
MAX_BODY_LENGTH = 100_000
MAX_START_DELAY_MINUTES = 30 * 24 * 60
# A status change lost to simultaneous requests is tried again this often, then refused.
TRANSITION_ATTEMPTS = 3

STATUS_LABELS = {
    CampaignStatus.DRAFT: "Draft",
    CampaignStatus.ACTIVE: "Active",
    CampaignStatus.PAUSED: "Paused",
    CampaignStatus.COMPLETED: "Completed",
    CampaignStatus.ARCHIVED: "Archived",
}
PAUSE_REASON_WORDS = {
    PauseReason.USER: "Paused by you.",
    PauseReason.MAILBOX_REAUTH_REQUIRED: "Paused because the sending account needs "
    "reauthentication.",
    PauseReason.MAILBOX_REAUTHENTICATED: "Paused because the sending account was "
    "reauthenticated. Resume when ready.",
    PauseReason.MAILBOX_DISCONNECTED: "Paused because the sending account was disconnected.",
    PauseReason.SEND_ERRORS: "Paused after repeated sending errors.",
    PauseReason.MAILBOX_BLOCKED: "Paused because the mail host refuses to send from the "
    "sending account until its owner acts. Fix it at the host, then resume.",
    PauseReason.BOUNCE_RATE: "Paused because too many recent emails bounced. Check the "
    "bounced recipients and the list they came from, then resume.",
    PauseReason.OWNER_DEACTIVATED: "Paused because its owner was deactivated. An admin can "
    "reassign it to someone else, who can then resume it.",
    PauseReason.DELEGATION_WITHDRAWN: "Paused because the sending account's owner withdrew "
    "their approval. Resume it after they approve again.",
}
ENROLLMENT_LABELS = {
    EnrollmentStatus.NOT_STARTED: "Not Started",
    EnrollmentStatus.IN_PROGRESS: "In Progress",
    EnrollmentStatus.COMPLETED: "Completed",
    EnrollmentStatus.REPLIED: "Replied",
    EnrollmentStatus.BOUNCED: "Bounced",
    EnrollmentStatus.UNSUBSCRIBED: "Unsubscribed",
    EnrollmentStatus.FAILED: "Failed",
    EnrollmentStatus.PAUSED: "Paused",
    EnrollmentStatus.REMOVED: "Removed",
    EnrollmentStatus.MOVED: "Moved",
}
# action: (statuses it may start from, status it leads to, what to say when refused)
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus, str]] = {
    "start": (
        frozenset({CampaignStatus.DRAFT}),
        CampaignStatus.ACTIVE,
        "Only a draft campaign can be started.",
    ),
    "pause": (
        frozenset({CampaignStatus.ACTIVE}),
        CampaignStatus.PAUSED,
        "Only an active campaign can be paused.",
    ),
    "resume": (
        frozenset({CampaignStatus.PAUSED}),
        CampaignStatus.ACTIVE,
        "Only a paused campaign can be resumed.",
    ),
    "complete": (
        frozenset({CampaignStatus.ACTIVE}),
        CampaignStatus.COMPLETED,
        "Only an active campaign can be completed.",
    ),
    "reopen": (
        frozenset({CampaignStatus.COMPLETED}),
        CampaignStatus.ACTIVE,
        "Only a completed campaign can be reopened.",
    ),
    "archive": (
        frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED}),
        CampaignStatus.ARCHIVED,
        "An active campaign cannot be archived; pause it first.",
    ),
    # Restore returns an archived campaign to the status it had before (`archived_from`).
    **{
        f"restore_to_{to.value}": (
            frozenset({CampaignStatus.ARCHIVED}),
            to,
            "Only an archived campaign can be restored.",
        )
        for to in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED)
    },
}
EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED})


@dataclass(frozen=True)
class CatchUpDefault:
    """What a Resume does with overdue steps when not told otherwise."""

    mode: CatchUp = CatchUp.CATCH_UP
    skip_days: int = 7


@dataclass(frozen=True)
class StepIn:
    subject: str
    body: str
    delay_minutes: int = 0
    body_html: str = ""
    new_thread: bool = False


def status_label(campaign: Campaign) -> str:
    return STATUS_LABELS[campaign.status]


def pause_reason_words(campaign: Campaign) -> str:
    if campaign.status is not CampaignStatus.PAUSED or campaign.pause_reason is None:
        return ""
    return PAUSE_REASON_WORDS[campaign.pause_reason]


def menu_actions(campaign: Campaign) -> list[tuple[str, str]]:
    """The three-dots menu's actions for a campaign in its status: (path, label)."""
    actions = {
        CampaignStatus.PAUSED: [("resume", "Resume")],
        CampaignStatus.ACTIVE: [("pause", "Pause")],
        CampaignStatus.DRAFT: [("start", "Start")],
    }.get(campaign.status, [])
    actions.append(("duplicate", "Duplicate"))
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        actions.append(("archive", "Archive"))
    if campaign.status is CampaignStatus.ARCHIVED:
        actions.append(("restore", "Restore"))
    return actions


# The Campaigns tab lists this many campaigns a page, newest first.
CAMPAIGNS_PAGE = 50


@dataclass(frozen=True)
class CampaignsPage:
    campaigns: list[Campaign]
    number: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        """The position of the page's first campaign among them all, from 1."""
        return (self.number - 1) * CAMPAIGNS_PAGE + 1


def visible_campaigns(db: Session, user: User) -> list[Campaign]:
    return repo.visible_campaigns(db, user)


def get_campaign(db: Session, user: User, campaign_id: int) -> Campaign:
    campaign = repo.get_visible_campaign(db, user, campaign_id)
    if campaign is None:
        raise NotFound("No such campaign.", code="unknown_campaign")
    return campaign


def counts_for(db: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Recipients by outcome and messages sent, per campaign."""
    return repo.counts_for(db, campaign_ids)


def history(db: Session, user: User, campaign_id: int) -> list[CampaignEvent]:
    """A campaign's history, newest first."""
    return repo.events(db, get_campaign(db, user, campaign_id).id)


def record_event(
    db: Session,
    campaign_id: int,
    kind: str,
    *,
    reason: str = "",
    actor: User | None = None,
    data: dict[str, Any] | None = None,
    pause_reason: PauseReason | None = None,
    detail: str = "",
) -> None:
    db.add(
        CampaignEvent(
            campaign_id=campaign_id,
            kind=kind,
            reason=reason,
            actor_id=actor.id if actor else None,
            at=utcnow(),
        )
    )
    _publish_status(db, campaign_id, kind, reason, data, pause_reason, detail)


def _publish_status(
    db: Session,
    campaign_id: int,
    kind: str,
    reason: str,
    data: dict[str, Any] | None = None,
    pause_reason: PauseReason | None = None,
    detail: str = "",
) -> None:
    events.publish(
        db,
        events.CampaignStatusChanged(
            campaign_id=campaign_id,
            kind=kind,
            reason=reason,
            data=data,
            pause_reason=pause_reason,
            detail=detail,
        ),
    )


def create_campaign(
    db: Session,
    user: User,
    *,
    name: str,
    mailbox_id: int,
    steps: list[StepIn],
    schedule: Schedule | None = None,
    start_delay_minutes: int = 20,
    catch_up: CatchUpDefault | None = None,
    guards: Guards | None = None,
) -> Campaign:
    """A new draft; every field is checked first, so nothing half-made is saved."""
    clean_name = _check_name(name)
    _check_mailbox(db, user, mailbox_id)
    checked = _check_steps(steps)
    merge_check.refuse_unknown(db, 0, checked)  # no recipients yet: typos of built-in fields
    _check_start_delay(start_delay_minutes)
    plan = schedule or Schedule()
    after_pause = catch_up or CatchUpDefault()
    campaign = Campaign(
        workspace_id=user.workspace_id,
        owner_id=user.id,
        mailbox_id=mailbox_id,
        name=clean_name,
        status=CampaignStatus.DRAFT,
        schedule_days=",".join(plan.days),
        schedule_start=plan.start,
        schedule_end=plan.end,
        timezone=plan.timezone,
        start_delay_minutes=start_delay_minutes,
        catch_up=after_pause.mode,
        catch_up_skip_days=check_skip_days(after_pause.skip_days),
        steps=[CampaignStep(position=i, **vars(step)) for i, step in enumerate(checked, 1)],
    )
    if guards is not None:
        apply_guards(campaign, guards)
    db.add(campaign)
    db.flush()
    record_event(db, campaign.id, "created", actor=user, reason=f"Created “{clean_name}”.")
    return campaign


def update_campaign(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    name: str,
    mailbox_id: int,
    steps: list[StepIn],
    schedule: Schedule,
    start_delay_minutes: int,
    catch_up: CatchUpDefault | None = None,
    guards: Guards | None = None,
) -> Campaign:
    """Change a draft or paused campaign; steps already sent keep their place (the catch-up
    default and the guards left out stay as they are)."""
    campaign = get_campaign(db, user, campaign_id)
    if campaign.status not in EDITABLE:
        raise Conflict(
            f"A {status_label(campaign).lower()} campaign cannot be edited"
            f"{'; pause it first' if campaign.status is CampaignStatus.ACTIVE else ''}.",
            code="not_editable",
        )
    clean_name = _check_name(name)
    if mailbox_id != campaign.mailbox_id:
        owner = db.get(User, campaign.owner_id)
        if owner is None:
            raise NotFound("No such campaign.", code="unknown_campaign")
        _check_mailbox(db, owner, mailbox_id)
    checked = _check_steps(steps)
    merge_check.refuse_unknown(db, campaign.id, checked)
    _check_start_delay(start_delay_minutes)
    if catch_up is not None:
        campaign.catch_up = catch_up.mode
        campaign.catch_up_skip_days = check_skip_days(catch_up.skip_days)
    campaign.name, campaign.mailbox_id = clean_name, mailbox_id
    campaign.schedule_days = ",".join(schedule.days)
    campaign.schedule_start, campaign.schedule_end = schedule.start, schedule.end
    campaign.timezone, campaign.start_delay_minutes = schedule.timezone, start_delay_minutes
    if guards is not None:
        apply_guards(campaign, guards)
    campaign.steps.clear()
    db.flush()
    campaign.steps.extend(
        CampaignStep(position=i, **vars(step)) for i, step in enumerate(checked, 1)
    )
    db.flush()
    record_event(db, campaign.id, "edited", actor=user, reason="Steps and settings saved.")
    return campaign


def duplicate(db: Session, user: User, campaign_id: int) -> Campaign:
    """A new draft with the same steps and settings, and no recipients."""
    source = get_campaign(db, user, campaign_id)
    copy = create_campaign(
        db,
        user,
        name=f"{source.name} (copy)"[:200],
        mailbox_id=source.mailbox_id,
        steps=[
            StepIn(s.subject, s.body, s.delay_minutes, s.body_html, s.new_thread)
            for s in source.steps
        ],
        schedule=Schedule(
            tuple(filter(None, source.schedule_days.split(","))),
            source.schedule_start,
            source.schedule_end,
            source.timezone,
        ),
        start_delay_minutes=source.start_delay_minutes,
        catch_up=CatchUpDefault(source.catch_up, source.catch_up_skip_days),
        guards=guards_of(source),
    )
    record_event(db, source.id, "duplicated", actor=user, reason=f"Copied to “{copy.name}”.")
    return copy


def start(db: Session, user: User, campaign_id: int) -> Campaign:
    """Validate, then activate: first emails are due after the start delay."""
    campaign = get_campaign(db, user, campaign_id)
    _require(campaign, "start")
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    if mailbox is not None:
        check_sender(db, campaign, mailbox)
    problems, total = validation.validate(db, campaign)
    if total:
        raise validation.CampaignNotReady(problems, total)
    now = utcnow()
    _transition(
        db,
        campaign,
        "start",
        actor=user,
        reason=f"Started; first emails from "
        f"{now + timedelta(minutes=campaign.start_delay_minutes):%Y-%m-%d %H:%M} UTC.",
    )
    campaign.started_at = now
    repo.schedule_unstarted(db, campaign.id, now + timedelta(minutes=campaign.start_delay_minutes))
    dispatch_work.request(db)
    return campaign


def pause(
    db: Session,
    user: User | None,
    campaign_id: int,
    *,
    reason: PauseReason = PauseReason.USER,
    detail: str = "",
    actor: User | None = None,
) -> Campaign:
    """Pause an active campaign; `user` (None: the system) must be able to see it, `actor`
    (default `user`) is who the history names; `detail` (what happened, in words) follows the
    reason in the history."""
    campaign = _campaign_for(db, user, campaign_id)
    words = f"{PAUSE_REASON_WORDS[reason]} {detail}".strip()[:2000]
    _transition(
        db,
        campaign,
        "pause",
        actor=actor or user,
        pause_reason=reason,
        reason=words,
        detail=detail,
    )
    return campaign


def paused_campaign(db: Session, user: User, campaign_id: int) -> Campaign:
    """The campaign, if Resume applies to it: it is paused."""
    campaign = get_campaign(db, user, campaign_id)
    _require(campaign, "resume")
    return campaign


def mark_resumed(
    db: Session, campaign: Campaign, *, actor: User, reason: str, data: dict[str, Any]
) -> None:
    """Back to Active (the sending engine's resume writes its plan after this)."""
    _transition(db, campaign, "resume", actor=actor, reason=reason, data=data)


def settle_resumed(db: Session, campaign: Campaign) -> None:
    """After a Resume's plan is written: its failure count starts over, a campaign whose
    recipients all finished meanwhile completes, and the sending engine is woken."""
    campaign.consecutive_failures = 0
    if not repo.has_pending(db, campaign.id):
        # Everyone finished (replied, unsubscribed, last steps skipped…) while it was paused.
        _transition(db, campaign, "complete", actor=None, reason="Every recipient has finished.")
    dispatch_work.request(db)


def archive(db: Session, user: User, campaign_id: int) -> Campaign:
    campaign = get_campaign(db, user, campaign_id)
    _transition(db, campaign, "archive", actor=user, reason="Archived.")
    return campaign


def restore(db: Session, user: User, campaign_id: int) -> Campaign:
    """Back from the archive to the status it had before: a draft stays a draft, a paused
    campaign is paused (by you; resume it to send again), a completed one completed."""
    campaign = get_campaign(db, user, campaign_id)
    _require(campaign, "restore_to_draft")
    to = campaign.archived_from
    if to not in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        # Archived before the status was kept: never started, finished, or else paused.
        if campaign.started_at is None:
            to = CampaignStatus.DRAFT
        elif repo.has_pending(db, campaign.id):
            to = CampaignStatus.PAUSED
        else:
            to = CampaignStatus.COMPLETED
    _transition(
        db,
        campaign,
        f"restore_to_{to.value}",
        actor=user,
        reason=f"Restored from the archive as {STATUS_LABELS[to].lower()}.",
        pause_reason=PauseReason.USER if to is CampaignStatus.PAUSED else None,
    )
    return campaign


def complete(db: Session, campaign_id: int) -> Campaign:
    """Every recipient has finished: the sending engine closes the campaign."""
    campaign = _campaign_for(db, None, campaign_id)
    _transition(db, campaign, "complete", actor=None, reason="Every recipient has finished.")
    return campaign


def reopen(db: Session, campaign_id: int, reason: str) -> Campaign:
    """A completed campaign has a step to send again (its host bounced it for its own
    sending limit): the sending engine makes it active again."""
    campaign = _campaign_for(db, None, campaign_id)
    _transition(db, campaign, "reopen", actor=None, reason=reason)
    return campaign


def pause_campaigns_for_mailbox(
    db: Session, mailbox_id: int, reason: PauseReason, detail: str = ""
) -> list[int]:
    """Pause every active campaign sending through a mailbox, each with its event (the
    reason's words, then `detail`: what the host said)."""
    now = utcnow()
    ids = repo.pause_active_for_mailbox(db, mailbox_id, reason, now)
    # One query for what each event below reads; held here, as the session keeps only
    # weak references to what it loaded.
    loaded = repo.load_campaigns(db, ids)
    words = f"{PAUSE_REASON_WORDS[reason]} {detail}".strip()[:2000]
    # The activity log's rows in one statement, then each campaign's event to its subscribers.
    repo.add_events(db, ids, kind="paused", reason=words, at=now)
    for campaign_id in ids:
        _publish_status(db, campaign_id, "paused", words, pause_reason=reason, detail=detail)
    del loaded
    return ids


MAILBOX_REASONS = (
    PauseReason.MAILBOX_REAUTH_REQUIRED,
    PauseReason.MAILBOX_DISCONNECTED,
    PauseReason.MAILBOX_REAUTHENTICATED,
)


def paused_by_mailbox(
    db: Session, user: User, mailbox_id: int, reasons: tuple[PauseReason, ...] = MAILBOX_REASONS
) -> list[Campaign]:
    """The user's campaigns this account's disconnect or reauthentication paused (or those
    paused for the given reasons)."""
    return repo.paused_for_mailbox(db, user, mailbox_id, reasons)


def check_mailbox_reach(db: Session, user: User, mailbox_id: int) -> None:
    """The user sees the account, or may send from it as a teammate's."""
    visible = mailbox_repo.get_visible_mailbox(db, user, mailbox_id) is not None
    if not visible and mailbox_repo.approved_delegation(db, user.id, mailbox_id) is None:
        raise NotFound("No such email account.", code="unknown_mailbox")


def check_sender(db: Session, campaign: Campaign, mailbox: Mailbox) -> None:
    """Refuse to send unless the campaign's owner is active and may send from the mailbox:
    their own, or a teammate's that approved it."""
    owner = db.get(User, campaign.owner_id)
    if owner is None or not owner.is_active:
        raise Conflict(
            f"{owner.display_name if owner else 'Its owner'} was deactivated. An admin can "
            "reassign the campaign to someone else first.",
            code="owner_deactivated",
        )
    if not may_send_from(db, owner, mailbox):
        mailbox_owner = db.get(User, mailbox.owner_id)
        name = mailbox_owner.display_name if mailbox_owner else "Its owner"
        raise Conflict(
            f"{name} has not approved {owner.display_name} to send from {mailbox.email} "
            f"(or withdrew the approval). Ask {name} to approve it again, then resume.",
            code="not_approved",
        )


def may_send_from(db: Session, user: User, mailbox: Mailbox) -> bool:
    """A campaign's owner sends from their own mailbox, or from a teammate's that approved
    them. Seeing every mailbox, as an admin does, is not sending as its owner."""
    return mailbox.workspace_id == user.workspace_id and (
        mailbox.owner_id == user.id
        or mailbox_repo.approved_delegation(db, user.id, mailbox.id) is not None
    )


def reassign(
    db: Session, admin: User, campaign_id: int, *, new_owner: User, mailbox_id: int
) -> Campaign:
    """An admin hands a campaign that is not sending to another user and mailbox; it stays
    paused (or a draft) until its new owner resumes (or starts) it."""
    campaign = get_campaign(db, admin, campaign_id)
    if campaign.status not in EDITABLE and campaign.status is not CampaignStatus.COMPLETED:
        raise Conflict(
            f"A {status_label(campaign).lower()} campaign cannot be reassigned"
            f"{'; pause it first' if campaign.status is CampaignStatus.ACTIVE else ''}.",
            code="not_reassignable",
        )
    mailbox = mailbox_repo.get_mailbox(db, mailbox_id)
    if (
        mailbox is None
        or mailbox.workspace_id != admin.workspace_id
        or not may_send_from(db, new_owner, mailbox)
    ):
        raise InvalidInput(
            f"Choose an email account {new_owner.display_name} may send from: their own, or "
            "a teammate's that approved them.",
            code="unknown_mailbox",
        )
    previous = db.get(User, campaign.owner_id)
    campaign.owner_id, campaign.mailbox_id = new_owner.id, mailbox.id
    db.flush()
    record_event(
        db,
        campaign.id,
        "reassigned",
        actor=admin,
        reason=f"Reassigned from {previous.display_name if previous else 'a removed user'} to "
        f"{new_owner.display_name}, sending from {mailbox.email}.",
    )
    return campaign


def _campaign_for(db: Session, user: User | None, campaign_id: int) -> Campaign:
    if user is not None:
        return get_campaign(db, user, campaign_id)
    campaign = db.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("No such campaign.", code="unknown_campaign")
    return campaign


def _require(campaign: Campaign, action: str) -> None:
    allowed, _to, refusal = TRANSITIONS[action]
    if campaign.status not in allowed:
        raise Conflict(
            f"{refusal} This one is {status_label(campaign).lower()}.", code="illegal_transition"
        )


def _transition(
    db: Session,
    campaign: Campaign,
    action: str,
    *,
    actor: User | None,
    reason: str,
    pause_reason: PauseReason | None = None,
    data: dict[str, Any] | None = None,
    detail: str = "",
) -> None:
    """Compare-and-set the status, so two simultaneous requests cannot both take effect."""
    allowed, to, _refusal = TRANSITIONS[action]
    _require(campaign, action)
    for _attempt in range(TRANSITION_ATTEMPTS):
        if repo.set_status_if(
            db, campaign.id, allowed, to, pause_reason=pause_reason, now=utcnow()
        ):
            break
        # Another request changed the status first: refused if that makes this one wrong;
        # else it was changed back meanwhile (a resume between two pauses), so set it again
        # rather than record an event for a change that did not happen.
        db.refresh(campaign)
        _require(campaign, action)
    else:
        raise Conflict(
            "The campaign is being changed by another request. Try again.",
            code="concurrent_change",
        )
    db.refresh(campaign)
    record_event(
        db,
        campaign.id,
        {
            "start": "started",
            "pause": "paused",
            "resume": "resumed",
            "complete": "completed",
            "reopen": "reopened",
            "archive": "archived",
        }.get(action, "restored"),
        actor=actor,
        reason=reason,
        data=data,
        pause_reason=pause_reason,
        detail=detail,
    )


def _check_name(name: str) -> str:
    clean = " ".join(name.split())
    if not clean:
        raise InvalidInput("Give the campaign a name.", code="invalid_name")
    if len(clean) > 200:
        raise InvalidInput("Keep the campaign name under 200 characters.", code="invalid_name")
    return clean


def _check_mailbox(db: Session, owner: User, mailbox_id: int) -> None:
    """The campaign's owner may send from the mailbox: theirs, or a teammate's they may use."""
    mailbox = mailbox_repo.get_mailbox(db, mailbox_id)
    if mailbox is None or not may_send_from(db, owner, mailbox):
        raise InvalidInput(
            "Choose one of your email accounts to send from.", code="unknown_mailbox"
        )


def _check_start_delay(minutes: int) -> None:
    if not 0 <= minutes <= MAX_START_DELAY_MINUTES:
        raise InvalidInput(
            "The start delay must be between 0 minutes and 30 days.", code="invalid_start_delay"
        )


def _check_steps(steps: list[StepIn]) -> list[StepIn]:
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"A campaign can have at most {MAX_STEPS} steps.", code="too_many_steps")
    checked = []
    for position, step in enumerate(steps, 1):
        label = f"Step {position}"
        subject = threads.stored_subject(steps, position, step.subject)
        if not step.body.strip():
            raise InvalidInput(f"{label} needs a body.", code="invalid_step")
        if any(len(text) > MAX_BODY_LENGTH for text in (step.body, step.body_html)):
            raise InvalidInput(
                f"{label} is longer than {MAX_BODY_LENGTH:,} characters.", code="invalid_step"
            )
        if not 0 <= step.delay_minutes <= MAX_DELAY_MINUTES:
            raise InvalidInput(
                f"{label}'s delay must be between 0 minutes and 365 days.", code="invalid_step"
            )
        for source, where in (
            (subject, f"{label} subject"),
            (step.body, f"{label} body"),
            (step.body_html, f"{label} HTML body"),
        ):
            templates.check_syntax(source, where)
            templates.check_budget(source, where)
        checked.append(
            StepIn(
                subject,
                step.body.replace("\r\n", "\n"),
                step.delay_minutes if position > 1 else 0,
                step.body_html.replace("\r\n", "\n"),
                step.new_thread,
            )
        )
    return checked
