"""JSON shapes of the campaigns API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sendwell.dispatch.resume import API_LISTED, ResumePlan
from sendwell.kit.schemas import RequestBody
from sendwell.models import CampaignStatus, CatchUp, EnrollmentStatus, PauseReason

MAX_RECIPIENTS_PER_REQUEST = 10_000


class StepIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(
        default="",
        description="Merge fields allowed, e.g. `Hi {{ first_name }}`. Required for the first "
        "step and for a step sent as a new thread; a reply step keeps its thread's subject "
        '("Re: …"), so leave it empty (a different subject is refused with the reason).',
    )
    body: str = Field(description="The plain-text body; merge fields allowed.")
    delay_minutes: int = Field(
        default=0, description="Wait after the previous step (ignored for the first step)."
    )
    body_html: str = Field(default="", description="Optional HTML body; merge fields escaped.")
    new_thread: bool = Field(
        default=False, description="Send as a new thread instead of a reply to the previous step."
    )


class ScheduleIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    days: list[str] = Field(default_factory=list, description="mon … sun; empty means every day.")
    start: str | None = Field(default=None, description="HH:MM, 24-hour clock.")
    end: str | None = Field(default=None, description="HH:MM, later than start.")
    timezone: str = Field(default="UTC", description="An IANA name such as Europe/Paris.")


class CampaignIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str
    mailbox_id: int = Field(description="One of your connected email accounts.")
    steps: list[StepIn] = Field(default_factory=list)
    schedule: ScheduleIn | None = Field(
        default=None, description="When emails may go out; any time when omitted."
    )
    start_delay_minutes: int = Field(
        default=20, description="Minutes between Start and the first emails (0 to 30 days)."
    )
    catch_up: CatchUp | None = Field(
        default=None,
        description="What Resume does with steps that fell due during a pause, unless told "
        "otherwise: `catch_up` (they go now, at the account's pace), `shift` (every pending "
        "step moves later by the length of the pause) or `skip` (steps overdue by more than "
        "`catch_up_skip_days` are skipped). Kept as it is when omitted on a replace; "
        "`catch_up` for a new campaign.",
    )
    catch_up_skip_days: int | None = Field(
        default=None, description="1 to 365; 7 for a new campaign when omitted."
    )

    bounce_pause_percent: float | None = Field(
        default=None,
        description="The campaign pauses itself (reason `bounce_rate`) when at least this "
        "percentage of its latest `bounce_pause_min_sends` sends bounced (more than 0, at most "
        "100). Omitted: the workspace default on create (SENDWELL_BOUNCE_PAUSE_PERCENT), "
        "unchanged on update.",
    )
    bounce_pause_min_sends: int | None = Field(
        default=None,
        description="How many of the latest sends the bounce rate is measured over, and so how "
        "many must have gone before it is judged (1 to 10,000). Omitted: the workspace default "
        "on create (SENDWELL_BOUNCE_PAUSE_MIN_SENDS), unchanged on update.",
    )
    auto_reply_hold_days: int | None = Field(
        default=None,
        description="A recipient whose mail host answers with an automatic reply (out of "
        "office) gets no email for this many days, then continues at the normal pace (0 to 60; "
        "0: auto-replies are ignored). Omitted: 3 on create, unchanged on update.",
    )


class ResumeIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    catch_up: CatchUp | None = Field(
        default=None, description="This Resume's choice; the campaign's own when omitted."
    )
    skip_days: int | None = Field(
        default=None, description="For `skip`: 1 to 365; the campaign's own when omitted."
    )


class PlannedSendOut(BaseModel):
    recipient_id: int
    email: str
    step: int
    expected_at: datetime = Field(description="When it is expected to go (an estimate).")


class SkippedStepsOut(BaseModel):
    recipient_id: int
    email: str
    steps: list[int]
    overdue_seconds: int
    next_step: int | None = Field(description="None: the skipped step was their last.")
    next_due_at: datetime | None


class HeldOut(BaseModel):
    recipient_id: int
    email: str
    until: datetime


class ResumePreviewOut(BaseModel):
    catch_up: CatchUp
    skip_days: int
    description: str
    paused_at: datetime
    paused_seconds: int
    due_now: int = Field(description="Steps that go when the campaign resumes.")
    due_now_by_step: dict[str, int]
    first_at: datetime | None
    last_at: datetime | None
    order: list[PlannedSendOut] = Field(
        description="The first of those steps in the order they go (all of them are counted above)."
    )
    arrived_during_pause: dict[str, int] = Field(
        description="Recipients who replied, bounced or unsubscribed while paused: they "
        "receive nothing more."
    )
    later: int = Field(description="Recipients whose next step is due later.")
    later_next_at: datetime | None
    shifted: int
    skipped: list[SkippedStepsOut]
    held: list[HeldOut] = Field(
        description="Recipients held after an automatic reply (out of office): nothing goes "
        "to them before `until`."
    )
    notes: list[str]

    @classmethod
    def from_plan(cls, plan: ResumePlan) -> ResumePreviewOut:
        return cls(
            catch_up=plan.choice.mode,
            skip_days=plan.choice.skip_days,
            description=plan.choice.words,
            paused_at=plan.paused_at,
            paused_seconds=int(plan.pause_length.total_seconds()),
            due_now=len(plan.due_now),
            due_now_by_step={str(k): v for k, v in plan.due_by_step.items()},
            first_at=plan.first_at,
            last_at=plan.last_at,
            order=[
                PlannedSendOut(
                    recipient_id=send.enrollment_id,
                    email=send.email,
                    step=send.step,
                    expected_at=send.at,
                )
                for send in plan.due_now[:API_LISTED]
            ],
            arrived_during_pause=plan.arrived,
            later=plan.later,
            later_next_at=plan.later_next,
            shifted=plan.shifted,
            skipped=[
                SkippedStepsOut(
                    recipient_id=skip.enrollment_id,
                    email=skip.email,
                    steps=list(skip.steps),
                    overdue_seconds=int(skip.overdue.total_seconds()),
                    next_step=skip.next_step,
                    next_due_at=skip.next_due_at,
                )
                for skip in plan.skipped
            ],
            held=[
                HeldOut(recipient_id=h.enrollment_id, email=h.email, until=h.until)
                for h in plan.held
            ],
            notes=plan.notes,
        )


class CampaignResumePreviewOut(BaseModel):
    campaign_id: int
    preview: ResumePreviewOut


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    subject: str
    body: str
    body_html: str
    delay_minutes: int
    new_thread: bool


class ScheduleOut(BaseModel):
    days: list[str]
    start: str | None
    end: str | None
    timezone: str


class CountsOut(BaseModel):
    recipients: int
    sent: int = Field(description="Messages sent, all steps.")
    replied: int
    bounced: int
    completed: int
    unsubscribed: int
    failed: int


class CampaignOut(BaseModel):
    id: int
    name: str
    status: CampaignStatus
    pause_reason: PauseReason | None
    pause_reason_text: str = Field(description="Why the campaign is paused, in words.")
    mailbox_id: int
    owner_id: int
    steps: list[StepOut]
    schedule: ScheduleOut
    start_delay_minutes: int
    catch_up: CatchUp
    catch_up_skip_days: int
    bounce_pause_percent: float = Field(
        description="Pauses itself when this percentage of its latest sends bounced."
    )
    bounce_pause_min_sends: int = Field(description="How many latest sends that is measured over.")
    auto_reply_hold_days: int = Field(description="Days a recipient is held after an auto-reply.")
    created_at: datetime
    started_at: datetime | None
    status_changed_at: datetime
    counts: CountsOut


class RecipientIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    fields: dict[str, str] = Field(
        default_factory=dict, description="Custom columns, usable as merge fields."
    )


class RecipientsIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    recipients: list[RecipientIn] = Field(
        description=f"At most {MAX_RECIPIENTS_PER_REQUEST:,} per request."
    )


class SkippedOut(BaseModel):
    row: int = Field(description="Position in the request's list, from 1.")
    email: str
    reason: str


class AddRecipientsOut(BaseModel):
    added: int
    skipped: list[SkippedOut]


class RecipientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    first_name: str
    last_name: str
    company: str
    title: str
    fields: dict[str, Any]
    status: EnrollmentStatus
    steps_sent: int
    next_due_at: datetime | None
    last_sent_at: datetime | None
    held_until: datetime | None = Field(
        description="After an automatic reply, no email before this moment (null: not held)."
    )
    hold_reason: str = Field(description="Why the recipient is held, in words.")
    status_reason: str = Field(
        "",
        description="Why the status is what it is (who paused or removed them, where they "
        "moved, the bounce…), in words.",
    )


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    actor_id: int | None
    reason: str


class PreviewRecipientOut(BaseModel):
    id: int
    email: str


class PreviewOut(BaseModel):
    subject: str
    body: str
    body_html: str
    recipient: PreviewRecipientOut


class ProblemOut(BaseModel):
    message: str
    step: int | None
    recipient: str | None
