"""The Campaigns tab, the campaign editor and the campaign page."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.campaigns import (
    import_flow,
    importer,
    merge_check,
    recipients,
    service,
    validation,
    views,
)
from sendwell.campaigns.forms import CampaignForm
from sendwell.campaigns.guards import Guards, guards_of
from sendwell.db import all_or_nothing
from sendwell.dispatch import pausing, resuming
from sendwell.dispatch.start_preview import startable
from sendwell.kit.errors import InvalidInput, NotFound, SendwellError
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.web import load_alerts
from sendwell.models import Campaign, User
from sendwell.web.csrf import check_upload_csrf
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter(dependencies=[Depends(load_alerts)])
CAMPAIGNS_TAB = "/messaging/campaigns"
ACTIONS = {"start", "pause", "resume", "archive", "duplicate", "restore"}
DONE = {
    "start": "“{name}” is active. First emails go out after the start delay.",
    "pause": "“{name}” is paused. Nothing more is sent until you resume it.",
    "resume": "“{name}” is active again and resumes from where it left off.",
    "archive": "“{name}” is archived.",
    "restore": "“{name}” is restored.",
}


@router.get("/messaging")
def messaging(_user: User = Depends(current_user)) -> Response:
    return RedirectResponse(CAMPAIGNS_TAB, status_code=303)


@router.get(CAMPAIGNS_TAB)
def campaigns_tab(
    request: Request,
    page: str = "1",
    q: str = "",
    status: str = "",
    sort: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    return render(
        request,
        "messaging/campaigns.html",
        views.campaigns_tab(db, user, services, page=page, search=q, status=status, sort=sort),
    )


@router.get("/campaigns/new")
def new_campaign(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    settings = get_settings(request)
    form = CampaignForm.new(
        bounce_pause_percent=settings.bounce_pause_percent,
        bounce_pause_min_sends=settings.bounce_pause_min_sends,
    )
    return _editor(request, db, user, form, campaign=None)


@router.post("/campaigns/new")
def create_campaign(
    request: Request,
    action: str = Form("save"),
    form: CampaignForm = Depends(CampaignForm.from_post_form),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    if _reshaped(form, action):
        return _editor(request, db, user, form, campaign=None)
    try:
        campaign = service.create_campaign(
            db,
            user,
            name=form.name,
            mailbox_id=form.mailbox(),
            steps=form.step_inputs(),
            schedule=form.schedule(),
            start_delay_minutes=form.start_delay(),
            catch_up=form.after_pause(),
            guards=form.guards(_default_guards(request)),
        )
    except SendwellError as error:
        return _editor(
            request,
            db,
            user,
            form,
            campaign=None,
            error=error.message,
            status_code=error.status_code,
        )
    return redirect_with_flash(
        request,
        f"/campaigns/{campaign.id}",
        f"“{campaign.name}” is saved as a draft. Add recipients, preview, then start it.",
    )


@router.get("/campaigns/{campaign_id}/edit")
def edit_campaign(
    request: Request,
    campaign_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    campaign = service.get_campaign(db, user, campaign_id)
    return _editor(request, db, user, CampaignForm.from_campaign(campaign), campaign=campaign)


@router.post("/campaigns/{campaign_id}/edit")
def save_campaign(
    request: Request,
    campaign_id: int,
    action: str = Form("save"),
    form: CampaignForm = Depends(CampaignForm.from_post_form),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    campaign = service.get_campaign(db, user, campaign_id)
    if _reshaped(form, action):
        return _editor(request, db, user, form, campaign=campaign)
    try:
        # A refused save is undone before the editor shows the campaign again.
        with all_or_nothing(db):
            service.update_campaign(
                db,
                user,
                campaign_id,
                name=form.name,
                mailbox_id=form.mailbox(),
                steps=form.step_inputs(),
                schedule=form.schedule(),
                start_delay_minutes=form.start_delay(),
                catch_up=form.after_pause(),
                guards=form.guards(guards_of(campaign)),
            )
    except SendwellError as error:
        campaign = service.get_campaign(db, user, campaign_id)
        return _editor(
            request,
            db,
            user,
            form,
            campaign=campaign,
            error=error.message,
            status_code=error.status_code,
        )
    warnings = merge_check.review(db, campaign_id, campaign.steps).warnings
    return redirect_with_flash(
        request,
        f"/campaigns/{campaign_id}",
        # The flash travels in a cookie: a few lines, then how many more (Start lists them all).
        " ".join(
            ["Changes saved.", *warnings[:3]]
            + ([f"({len(warnings) - 3} more fields need a look.)"] if len(warnings) > 3 else [])
        ),
        kind="warning" if warnings else "success",
    )


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request,
    campaign_id: int,
    step: int = 1,
    recipient: int = 0,
    page: int = 1,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _campaign_page(request, db, user, campaign_id, step=step, recipient=recipient, page=page)


@router.post("/campaigns/{campaign_id}/recipients")
def add_recipient(
    request: Request,
    campaign_id: int,
    email: str = Form(""),
    first_name: str = Form(""),
    last_name: str = Form(""),
    company: str = Form(""),
    title: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.get_campaign(db, user, campaign_id)  # someone else's campaign is a 404 page
    row = recipients.RecipientIn(
        email=email, first_name=first_name, last_name=last_name, company=company, title=title
    )
    try:
        report = recipients.add_recipients(
            db, user, campaign_id, [row], allow_test_domains=_sandbox(request)
        )
    except SendwellError as error:
        return redirect_with_flash(
            request, f"/campaigns/{campaign_id}#recipients", error.message, kind="error"
        )
    if report.skipped:
        return redirect_with_flash(
            request,
            f"/campaigns/{campaign_id}#recipients",
            f"{email.strip() or 'That address'} was not added: {report.skipped[0].reason}.",
            kind="error",
        )
    return redirect_with_flash(
        request, f"/campaigns/{campaign_id}#recipients", f"{email.strip()} was added."
    )


@router.get("/campaigns/{campaign_id}/recipients/{enrollment_id}")
def recipient_page(
    request: Request,
    campaign_id: int,
    enrollment_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """One recipient's sequence: each step's state, when it went, and why it stopped."""
    return render(
        request,
        "campaigns/recipient.html",
        views.recipient_page(db, user, services, campaign_id, enrollment_id),
    )


@router.post("/campaigns/{campaign_id}/recipients/import")
def import_recipients(
    request: Request,
    campaign_id: int,
    file: UploadFile = File(...),
    _csrf: None = Depends(check_upload_csrf),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """A CSV upload, kept for its mapping page (`import_web`), where the user imports it."""
    try:
        if not file.filename:
            raise InvalidInput("Choose a CSV file to import.", code="no_file")
        with all_or_nothing(db):
            pending = import_flow.stage(
                db,
                user,
                campaign_id,
                file.file,
                filename=file.filename,
                max_bytes=int(get_settings(request).max_upload_mb * 1_000_000),
            )
    except SendwellError as error:
        return _campaign_page(
            request,
            db,
            user,
            campaign_id,
            import_error=error.message,
            status_code=error.status_code,
        )
    return RedirectResponse(
        f"/campaigns/{campaign_id}/recipients/import/{pending.token}", status_code=303
    )


@router.get("/campaigns/{campaign_id}/resume")
def resume_page(
    request: Request,
    campaign_id: int,
    catch_up: str = "",
    skip_days: str = "",
    back: str = CAMPAIGNS_TAB,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """What Resume will do, with the catch-up choice to confirm or change."""
    target = _back(back)
    service.get_campaign(db, user, campaign_id)  # someone else's campaign is a 404 page
    try:
        campaign = resuming.resumable(db, user, campaign_id)
    except SendwellError as problem:
        return redirect_with_flash(request, target, problem.message, kind="error")
    interval = resuming.send_interval(db, services, campaign.mailbox_id)
    error = ""
    try:
        plan = resuming.resume_preview(
            db, user, campaign_id, catch_up=catch_up, skip_days=skip_days, host_interval=interval
        )
    except InvalidInput as problem:
        error = problem.message
        plan = resuming.resume_preview(db, user, campaign_id, host_interval=interval)
    except SendwellError as problem:
        return redirect_with_flash(request, target, problem.message, kind="error")
    return render(
        request,
        "campaigns/resume.html",
        {
            "plans": [(campaign, plan)],
            "choice": plan.choice,
            "choice_form": {"catch_up": catch_up, "skip_days": skip_days},
            "error": error,
            "back": target,
            "action": f"/campaigns/{campaign.id}/resume",
            "title": f"Resume “{campaign.name}”",
            "pause_words": service.pause_reason_words,
            "confirm_label": "Resume",
        },
        status_code=422 if error else 200,
    )


@router.post("/campaigns/{campaign_id}/{action}")
def campaign_action(
    request: Request,
    campaign_id: int,
    action: str,
    back: str = Form(CAMPAIGNS_TAB),
    confirmed: str = Form(""),
    catch_up: str = Form(""),
    skip_days: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    if action not in ACTIONS:
        raise NotFound("That action does not exist.")
    campaign = service.get_campaign(db, user, campaign_id)  # someone else's: a 404 page
    target = _back(back)
    if action == "start" and not confirmed:
        # Start shows who gets the first email, when, and from where, on a page that
        # confirms it (campaigns/editor_web.py); a campaign that cannot start is refused here.
        try:
            startable(db, user, campaign_id)
        except validation.CampaignNotReady as error:
            return _campaign_page(
                request,
                db,
                user,
                campaign_id,
                problems=error.problems,
                problem_total=error.total,
                status_code=error.status_code,
            )
        except SendwellError as error:
            return redirect_with_flash(request, target, error.message, kind="error")
        return RedirectResponse(
            f"/campaigns/{campaign_id}/start?{urlencode({'back': target})}", status_code=303
        )
    if action == "resume" and not confirmed:
        # Resume shows what it will do first, on a page that confirms it; a campaign that
        # cannot resume now is refused at once.
        try:
            resuming.resumable(db, user, campaign_id)
        except SendwellError as error:
            return redirect_with_flash(request, target, error.message, kind="error")
        return RedirectResponse(
            f"/campaigns/{campaign_id}/resume?{urlencode({'back': target})}", status_code=303
        )
    try:
        if action == "resume":
            campaign = resuming.resume(
                db,
                user,
                campaign_id,
                catch_up=catch_up,
                skip_days=skip_days,
                host_interval=resuming.send_interval(db, services, campaign.mailbox_id),
            )
            return redirect_with_flash(request, target, DONE[action].format(name=campaign.name))
        if action == "duplicate":
            copy = service.duplicate(db, user, campaign_id)
            return redirect_with_flash(
                request,
                f"/campaigns/{copy.id}",
                f"“{copy.name}” is a new draft with the same steps.",
            )
        if action == "pause":
            # When the user sees "paused", nothing more may go out: let in-flight sends land.
            factory = request.app.state.session_factory
            campaign = pausing.pause(db, factory, user, campaign_id)
        else:
            campaign = getattr(service, action)(db, user, campaign_id)
    except validation.CampaignNotReady as error:
        return _campaign_page(
            request,
            db,
            user,
            campaign_id,
            problems=error.problems,
            problem_total=error.total,
            status_code=error.status_code,
        )
    except InvalidInput as error:
        if action == "resume":  # a catch-up choice that is not one: back to the choice
            page = f"/campaigns/{campaign_id}/resume?{urlencode({'back': target})}"
            return redirect_with_flash(request, page, error.message, kind="error")
        return redirect_with_flash(request, target, error.message, kind="error")
    except SendwellError as error:
        return redirect_with_flash(request, target, error.message, kind="error")
    return redirect_with_flash(request, target, DONE[action].format(name=campaign.name))


def _back(back: str) -> str:
    """Where an action returns: a page of ours, never an address from elsewhere."""
    return back if back.startswith(("/campaigns/", CAMPAIGNS_TAB)) else CAMPAIGNS_TAB


def _reshaped(form: CampaignForm, action: str) -> bool:
    """Adding or removing a step re-shows the editor instead of saving."""
    if action == "add_step":
        form.add_step()
        return True
    if action.startswith("remove_step:"):
        form.remove_step(int(action.split(":", 1)[1] or 0))
        return True
    return False


def _editor(
    request: Request,
    db: Session,
    user: User,
    form: CampaignForm,
    *,
    campaign: Campaign | None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    posted = request.method == "POST"
    shown = views.editor(db, user, form, campaign=campaign, posted=posted, error=error)
    return render(request, "campaigns/editor.html", shown, status_code=status_code)


def _campaign_page(
    request: Request,
    db: Session,
    user: User,
    campaign_id: int,
    *,
    step: int = 1,
    recipient: int = 0,
    page: int = 1,
    problems: list[validation.Problem] | None = None,
    problem_total: int = 0,
    import_report: importer.ImportReport | None = None,
    import_error: str = "",
    status_code: int = 200,
) -> Response:
    shown = views.campaign_page(
        db,
        user,
        get_services(request),
        campaign_id,
        params=request.query_params,
        step=step,
        recipient=recipient,
        page=page,
        problems=problems,
        problem_total=problem_total,
        import_report=import_report,
        import_error=import_error,
    )
    return render(request, "campaigns/detail.html", shown, status_code=status_code)


def _default_guards(request: Request) -> Guards:
    """The workspace's guards for new campaigns (SENDWELL_BOUNCE_PAUSE_*)."""
    settings = get_settings(request)
    return Guards(settings.bounce_pause_percent, settings.bounce_pause_min_sends)


def _sandbox(request: Request) -> bool:
    return bool(request.app.state.services.sandbox)
