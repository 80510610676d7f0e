"""JSON shapes of Resume in the API: the catch-up choice a request makes and the plan a
preview shows (dispatch/resume.py), for one campaign or all an account's change paused."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sendwell.dispatch.resume import API_LISTED, ResumePlan
from sendwell.kit.schemas import RequestBody
from sendwell.models import CatchUp


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
