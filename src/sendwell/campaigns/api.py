"""JSON routes for campaigns: author, add recipients, start, pause, resume, archive, preview."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.campaigns import merge_check, recipients, service, validation
from sendwell.campaigns.guards import Guards, check_guards, guards_of
from sendwell.campaigns.import_api import skip_choice
from sendwell.campaigns.recipient_actions import filtered_recipients
from sendwell.campaigns.schedule import Schedule, parse_schedule
from sendwell.campaigns.schemas import (
    MAX_RECIPIENTS_PER_REQUEST,
    AddRecipientsOut,
    CampaignIn,
    CampaignOut,
    CountsOut,
    EventOut,
    PreviewOut,
    PreviewRecipientOut,
    ProblemOut,
    RecipientOut,
    RecipientsIn,
    ScheduleIn,
    ScheduleOut,
    SkippedOut,
    StepOut,
)
from sendwell.dispatch import pausing, resuming
from sendwell.dispatch.schemas import ResumeIn, ResumePreviewOut
from sendwell.kit.errors import InvalidInput
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import Campaign, CampaignStatus, CampaignStep, CatchUp, User
from sendwell.web.deps import get_db, get_services, get_settings

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

NOT_READY_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "The campaign cannot start yet: `error.problems` lists what to fix "
        "(each with `message`, `step` and `recipient`), `error.total` how many there are."
    }
}


@router.get("", response_model=list[CampaignOut], summary="Campaigns you can see")
def list_campaigns(
    q: str = Query("", max_length=200, description="Only campaigns whose name contains this"),
    status: str = Query("", description="Only campaigns in this status (archived included)"),
    sort: str = Query("created", description="created (newest first), name, or sent (most)"),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> list[CampaignOut]:
    if status and status not in {s.value for s in CampaignStatus}:
        raise InvalidInput(
            "status must be one of draft, active, paused, completed, archived.",
            code="invalid_status",
        )
    if sort not in ("created", "name", "sent"):
        raise InvalidInput("sort must be one of created, name, sent.", code="invalid_sort")
    search = " ".join(q.split()).lower()
    campaigns = [
        c
        for c in service.visible_campaigns(db, user)
        if search in c.name.lower() and (not status or c.status.value == status)
    ]
    ids = [campaign.id for campaign in campaigns]
    counts = service.counts_for(db, ids)
    if sort == "name":
        campaigns.sort(key=lambda c: (c.name.lower(), c.id))
    elif sort == "sent":
        campaigns.sort(key=lambda c: (-counts[c.id]["sent"], -c.id))
    return [_campaign_out(c, counts[c.id], c.steps) for c in campaigns]


@router.post("", response_model=CampaignOut, status_code=201, summary="Create a draft campaign")
def create_campaign(
    body: CampaignIn,
    request: Request,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    settings = get_settings(request)
    default = Guards(settings.bounce_pause_percent, settings.bounce_pause_min_sends)
    campaign = service.create_campaign(
        db,
        user,
        name=body.name,
        mailbox_id=body.mailbox_id,
        steps=_steps_in(body),
        schedule=_schedule_in(body.schedule),
        start_delay_minutes=body.start_delay_minutes,
        catch_up=_catch_up_in(body),
        guards=_guards_in(body, default),
    )
    return _with_field_warnings(db, campaign)


@router.get("/{campaign_id}", response_model=CampaignOut, summary="One campaign")
def get_campaign(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    return _out(db, service.get_campaign(db, user, campaign_id))


@router.put(
    "/{campaign_id}",
    response_model=CampaignOut,
    summary="Replace the name, account, steps and settings of a draft or paused campaign",
)
def update_campaign(
    campaign_id: int,
    body: CampaignIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    current = guards_of(service.get_campaign(db, user, campaign_id))
    changed = any(
        value is not None
        for value in (
            body.bounce_pause_percent,
            body.bounce_pause_min_sends,
            body.auto_reply_hold_days,
        )
    )
    campaign = service.update_campaign(
        db,
        user,
        campaign_id,
        name=body.name,
        mailbox_id=body.mailbox_id,
        steps=_steps_in(body),
        schedule=_schedule_in(body.schedule) or Schedule(),
        start_delay_minutes=body.start_delay_minutes,
        catch_up=_catch_up_in(body, campaign_id=campaign_id, db=db, user=user),
        guards=_guards_in(body, current) if changed else None,
    )
    return _with_field_warnings(db, campaign)


@router.post(
    "/{campaign_id}/start",
    response_model=CampaignOut,
    responses=NOT_READY_RESPONSE,
    summary="Validate, then start sending after the start delay",
)
def start_campaign(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut | JSONResponse:
    try:
        campaign = service.start(db, user, campaign_id)
    except validation.CampaignNotReady as error:
        problems = [ProblemOut(**vars(problem)).model_dump() for problem in error.problems]
        return JSONResponse(
            {
                "error": {
                    "code": error.code,
                    "message": error.message,
                    "problems": problems,
                    "total": error.total,
                }
            },
            status_code=error.status_code,
        )
    return _out(db, campaign)


@router.post("/{campaign_id}/pause", response_model=CampaignOut, summary="Pause sending")
def pause_campaign(
    request: Request,
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    """When this answers, nothing more of the campaign is handed to the mail host."""
    campaign = pausing.pause(db, request.app.state.session_factory, user, campaign_id)
    return _out(db, campaign)


@router.get(
    "/{campaign_id}/resume-preview",
    response_model=ResumePreviewOut,
    summary="What Resume would do now: steps due, when they go, what arrived during the pause",
)
def resume_preview(
    campaign_id: int,
    catch_up: CatchUp | None = Query(
        default=None, description="The choice to preview; the campaign's own when omitted."
    ),
    skip_days: int | None = Query(default=None, description="For `skip`: 1 to 365."),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> ResumePreviewOut:
    """The same plan `POST …/resume` with the same choice follows, computed now: steps are
    listed in the order they go; times are estimates at the account's pace and schedule."""
    campaign = service.get_campaign(db, user, campaign_id)
    return ResumePreviewOut.from_plan(
        resuming.resume_preview(
            db,
            user,
            campaign_id,
            catch_up=catch_up,
            skip_days=skip_days,
            host_interval=resuming.send_interval(db, services, campaign.mailbox_id),
        )
    )


@router.post(
    "/{campaign_id}/resume",
    response_model=CampaignOut,
    summary="Resume from where it left off (refused while the account cannot send)",
)
def resume_campaign(
    campaign_id: int,
    body: ResumeIn | None = None,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> CampaignOut:
    """With no body, the campaign's own catch-up choice; `GET …/resume-preview` shows what
    it does."""
    campaign = service.get_campaign(db, user, campaign_id)
    return _out(
        db,
        resuming.resume(
            db,
            user,
            campaign_id,
            catch_up=body.catch_up if body else None,
            skip_days=body.skip_days if body else None,
            host_interval=resuming.send_interval(db, services, campaign.mailbox_id),
        ),
    )


@router.post(
    "/{campaign_id}/archive",
    response_model=CampaignOut,
    summary="Archive a draft, paused or completed campaign",
)
def archive_campaign(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    return _out(db, service.archive(db, user, campaign_id))


@router.post(
    "/{campaign_id}/restore",
    response_model=CampaignOut,
    summary="Restore an archived campaign to the status it had before it was archived",
)
def restore_campaign(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    return _out(db, service.restore(db, user, campaign_id))


@router.post(
    "/{campaign_id}/duplicate",
    response_model=CampaignOut,
    status_code=201,
    summary="A new draft with the same steps and settings, and no recipients",
)
def duplicate_campaign(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> CampaignOut:
    return _out(db, service.duplicate(db, user, campaign_id))


@router.post(
    "/{campaign_id}/recipients",
    response_model=AddRecipientsOut,
    summary=f"Add recipients (at most {MAX_RECIPIENTS_PER_REQUEST:,} per request)",
)
def add_recipients(
    campaign_id: int,
    body: RecipientsIn,
    request: Request,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> AddRecipientsOut:
    if len(body.recipients) > MAX_RECIPIENTS_PER_REQUEST:
        raise InvalidInput(
            f"Send at most {MAX_RECIPIENTS_PER_REQUEST:,} recipients per request "
            f"(this one has {len(body.recipients):,}); split the list into several requests.",
            code="too_many_recipients",
        )
    report = recipients.add_recipients(
        db,
        user,
        campaign_id,
        (
            recipients.RecipientIn(
                email=row.email,
                first_name=row.first_name or "",
                last_name=row.last_name or "",
                company=row.company or "",
                title=row.title or "",
                fields=row.fields,
                timezone=row.timezone or "",
            )
            for row in body.recipients
        ),
        allow_test_domains=bool(request.app.state.services.sandbox),
        skip_previous=skip_choice(body.skip_previous),
    )
    return AddRecipientsOut(
        added=report.added,
        skipped=[SkippedOut(row=s.row, email=s.email, reason=s.reason) for s in report.skipped],
    )


@router.get(
    "/{campaign_id}/recipients",
    response_model=list[RecipientOut],
    summary="The campaign's recipients and how far each has gone",
)
def list_recipients(
    campaign_id: int,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    status: str = Query("", description="Only recipients in this status."),
    step: int | None = Query(None, ge=0, description="Only those with this many steps sent."),
    domain: str = Query("", description="Only addresses at this domain."),
    q: str = Query("", description="Email or name contains this."),
    sort: str = Query("", description="email, status, step or last_sent; -key: descending."),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> list[RecipientOut]:
    found = filtered_recipients(
        db,
        user,
        campaign_id,
        status=status,
        step=step,
        domain=domain,
        q=q,
        sort=sort,
        offset=offset,
        limit=limit,
    )
    return [RecipientOut.model_validate(enrollment) for enrollment in found]


@router.get(
    "/{campaign_id}/preview",
    response_model=PreviewOut,
    summary="One step as one recipient would receive it (the first recipient by default)",
)
def preview(
    campaign_id: int,
    step: int = Query(1, ge=1),
    recipient_id: int | None = Query(None, ge=1),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> PreviewOut:
    campaign = service.get_campaign(db, user, campaign_id)
    rendered, enrollment = validation.preview(db, campaign, step, recipient_id)
    return PreviewOut(
        subject=rendered.subject,
        body=rendered.body,
        body_html=rendered.body_html,
        recipient=PreviewRecipientOut(id=enrollment.id, email=enrollment.email),
    )


@router.get(
    "/{campaign_id}/events",
    response_model=list[EventOut],
    summary="The campaign's history, newest first",
)
def list_events(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> list[EventOut]:
    return [EventOut.model_validate(event) for event in service.history(db, user, campaign_id)]


def _steps_in(body: CampaignIn) -> list[service.StepIn]:
    return [
        service.StepIn(
            subject=step.subject,
            body=step.body,
            delay_minutes=step.delay_minutes,
            body_html=step.body_html,
            new_thread=step.new_thread,
        )
        for step in body.steps
    ]


def _catch_up_in(
    body: CampaignIn,
    *,
    campaign_id: int | None = None,
    db: Session | None = None,
    user: User | None = None,
) -> service.CatchUpDefault | None:
    """The catch-up default asked for; on a replace, what is omitted stays as it is."""
    if body.catch_up is None and body.catch_up_skip_days is None:
        return None
    kept = (
        service.get_campaign(db, user, campaign_id)
        if campaign_id is not None and db is not None and user is not None
        else None
    )
    return service.CatchUpDefault(
        body.catch_up or (kept.catch_up if kept else CatchUp.CATCH_UP),
        body.catch_up_skip_days or (kept.catch_up_skip_days if kept else 7),
    )


def _schedule_in(schedule: ScheduleIn | None) -> Schedule | None:
    if schedule is None:
        return None
    return parse_schedule(schedule.days, schedule.start, schedule.end, schedule.timezone)


def _guards_in(body: CampaignIn, fallback: Guards) -> Guards:
    """The guards the body names, `fallback`'s where it names none."""
    return check_guards(
        bounce_pause_percent=fallback.bounce_pause_percent
        if body.bounce_pause_percent is None
        else body.bounce_pause_percent,
        bounce_pause_min_sends=fallback.bounce_pause_min_sends
        if body.bounce_pause_min_sends is None
        else body.bounce_pause_min_sends,
        auto_reply_hold_days=fallback.auto_reply_hold_days
        if body.auto_reply_hold_days is None
        else body.auto_reply_hold_days,
    )


def campaign_out(db: Session, campaign: Campaign) -> CampaignOut:
    """A campaign as the API shows it, with its counts."""
    return _out(db, campaign)


def _with_field_warnings(db: Session, campaign: Campaign) -> CampaignOut:
    out = _out(db, campaign)
    out.field_warnings = merge_check.review(db, campaign.id, campaign.steps).warnings
    return out


def _out(db: Session, campaign: Campaign) -> CampaignOut:
    return _campaign_out(
        campaign, service.counts_for(db, [campaign.id])[campaign.id], campaign.steps
    )


def _campaign_out(
    campaign: Campaign, counts: dict[str, int], steps: Sequence[CampaignStep]
) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        pause_reason=campaign.pause_reason,
        pause_reason_text=service.pause_reason_words(campaign),
        mailbox_id=campaign.mailbox_id,
        owner_id=campaign.owner_id,
        steps=[StepOut.model_validate(step) for step in steps],
        schedule=ScheduleOut(
            days=[day for day in campaign.schedule_days.split(",") if day],
            start=campaign.schedule_start,
            end=campaign.schedule_end,
            timezone=campaign.timezone,
        ),
        start_delay_minutes=campaign.start_delay_minutes,
        catch_up=campaign.catch_up,
        catch_up_skip_days=campaign.catch_up_skip_days,
        bounce_pause_percent=campaign.bounce_pause_percent,
        bounce_pause_min_sends=campaign.bounce_pause_min_sends,
        auto_reply_hold_days=campaign.auto_reply_hold_days,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        status_changed_at=campaign.status_changed_at,
        counts=CountsOut(**{name: counts[name] for name in CountsOut.model_fields}),
    )
