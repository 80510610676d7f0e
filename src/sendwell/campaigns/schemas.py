"""JSON shapes of the campaigns API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
    interested: int = Field(0, description="Recipients whose reply is marked Interested.")


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
    field_warnings: list[str] = Field(
        default_factory=list,
        description="After a create or update: merge fields that are empty for some recipients "
        "(Start refuses them until they have a value or a default), one line per field.",
    )


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
    timezone: str | None = Field(
        None,
        description="An IANA time zone (Asia/Tokyo): the campaign's sending days and hours "
        "apply in it for this recipient. Unknown names are skipped with the reason.",
    )


class RecipientsIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    recipients: list[RecipientIn] = Field(
        description=f"At most {MAX_RECIPIENTS_PER_REQUEST:,} per request."
    )
    skip_previous: list[str] | None = Field(
        None,
        description="Skip people who, in another campaign of the workspace, did this: "
        "contacted, replied, bounced, unsubscribed. By default bounced, replied, unsubscribed; "
        '["none"] skips nobody for their history (the suppression list is always honoured).',
    )


class SkippedOut(BaseModel):
    row: int = Field(description="Position in the request's list, from 1.")
    email: str
    reason: str


class AddRecipientsOut(BaseModel):
    added: int
    skipped: list[SkippedOut]


class ImportOut(BaseModel):
    added: int
    skipped: list[SkippedOut]
    skipped_by_reason: dict[str, int] = Field(
        description="How many rows were skipped for each kind of reason."
    )
    columns: dict[str, str] = Field(description="Each column's header and where it went.")
    summary: str = Field(description="The sentence the campaign's activity log shows.")


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
    timezone: str = Field(
        "", description="The recipient's own time zone (IANA), in which the sending hours apply."
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
    recipient: str | None = Field(description="The (first) recipient the problem concerns.")
    recipients: int = Field(
        0, description="How many recipients the problem concerns (0: none in particular)."
    )
