"""The Settings tab: link, reauthenticate and remove email accounts; Email Settings pages."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import SESSION_COOKIE, current_user
from sendwell.accounts.service import normalize_email
from sendwell.campaigns import service as campaigns
from sendwell.dispatch import resuming
from sendwell.kit.errors import InvalidInput, SendwellError
from sendwell.mailboxes import domain_checks, lookahead, service, views
from sendwell.mailboxes.provider_services import ProviderServices, provider_label
from sendwell.models import MailboxStatus, User
from sendwell.providers.errors import (
    AdminApprovalRequired,
    ConsentDeclined,
    InsufficientScope,
    ProviderError,
)
from sendwell.teams.service import teammates
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

SETTINGS_TAB = "/messaging/settings"
EXPIRY_TAB = "/messaging/expiry"
SERVER_LINK = "/mailboxes/link/server"


def load_alerts(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> None:
    """Every Messaging page shows a banner while one of the user's accounts is broken, or
    is expected to break within its warning time."""
    request.state.alerts, request.state.expiry_alerts = views.banners(
        db, services.expiry_rules, user
    )


router = APIRouter(dependencies=[Depends(load_alerts)])


@router.get(EXPIRY_TAB)
def expiry_tab(
    request: Request,
    sort: str = "expiry",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """Admins: every account of the workspace with its expected expiry, soonest first."""
    rows = lookahead.workspace_expiries(db, services.expiry_rules, user, sort)
    return render(
        request,
        "messaging/expiry.html",
        {"tab": "expiry", "rows": rows, "sort": sort, "provider_label": provider_label},
    )


@router.get(SETTINGS_TAB)
def settings_tab(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    shown = views.settings_tab(db, user, services, get_settings(request))
    return render(request, "messaging/settings.html", shown)


@router.get("/mailboxes/link")
def link_page(
    request: Request,
    own: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """The pop-up's second step as a page, for browsers without scripts or after an error."""
    return render(
        request,
        "mailboxes/link.html",
        {"own": own == "on", "teammate": own == "teammate", "email": "", **_choices(db, user)},
    )


def _choices(db: Session, user: User) -> dict[str, object]:
    return {"teammates": teammates(db, user)}


@router.post("/mailboxes/link")
def link(
    request: Request,
    email: str = Form(""),
    own: str = Form(""),
    provider: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    try:
        if own != "on":
            raise InvalidInput(
                "Tick “Your email account” to link a mailbox you own.", code="not_own"
            )
        address = normalize_email(email, allow_test_domains=services.sandbox)
        chosen = service.choose_provider(services, address, provider)
        if chosen is None:
            return render(
                request,
                "mailboxes/choose_provider.html",
                {"email": address, "providers": _configured(services)},
            )
        if not chosen.has_sign_in_page:
            return RedirectResponse(
                f"{SERVER_LINK}?{urlencode({'email': address})}", status_code=303
            )
        url = service.start_link(
            db,
            services,
            user=user,
            email=address,
            provider_name=chosen,
            session_secret=request.cookies.get(SESSION_COOKIE),
        )
    except SendwellError as error:
        return render(
            request,
            "mailboxes/link.html",
            {"own": own == "on", "email": email, "error": error.message, **_choices(db, user)},
            status_code=error.status_code,
        )
    return RedirectResponse(url, status_code=303)


@router.get("/mailboxes/callback/{provider}")
def callback(
    request: Request,
    provider: str,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    params = dict(request.query_params)
    label = provider_label(provider)
    if "admin_consent" in params:
        return _outcome(
            request,
            "Your administrator has answered",
            "If they approved Sendwell, link your account again now.",
            retry=True,
        )
    try:
        attempt = service.take_link_attempt(
            db,
            user=user,
            provider_name=provider,
            state=params.get("state", ""),
            session_secret=request.cookies.get(SESSION_COOKIE),
        )
    except SendwellError as error:
        return _outcome(
            request,
            "This sign-in cannot be used",
            error.message,
            retry=True,
            status_code=error.status_code,
        )
    try:
        result = service.complete_link(db, services, user=user, attempt=attempt, params=params)
    except ConsentDeclined:
        return redirect_with_flash(
            request,
            SETTINGS_TAB,
            f"You cancelled at {label}. No account was linked.",
            kind="warning",
        )
    except AdminApprovalRequired as error:
        return _admin_approval(request, services, provider, attempt.typed_email, error.code)
    except InsufficientScope as error:
        return _missing_permissions(request, services, provider, attempt.typed_email, error.missing)
    except ProviderError as error:
        return _outcome(
            request,
            f"{label} did not finish the sign-in",
            f"{error.message} Nothing was saved; you can try again.",
            retry=True,
            email=attempt.typed_email,
            detail=error.code,
            status_code=502,
        )
    except SendwellError as error:
        return _outcome(
            request, "This account cannot be linked", error.message, status_code=error.status_code
        )
    if isinstance(result, service.NeedsConfirmation):
        return render(
            request, "mailboxes/confirm_address.html", {"pending": result, "label": label}
        )
    if attempt.delegation_id is not None:
        return redirect_with_flash(
            request,
            f"/delegations/{attempt.delegation_id}",
            f"{result.mailbox.email} is connected. Review the request and approve it.",
        )
    return linked_page(request, result)


@router.post("/mailboxes/link/{attempt_id}/confirm")
def confirm(
    request: Request,
    attempt_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    try:
        result = service.confirm_link(db, services, user=user, attempt_id=attempt_id)
    except SendwellError as error:
        return _outcome(
            request, "This account cannot be linked", error.message, status_code=error.status_code
        )
    return linked_page(request, result)


@router.post("/mailboxes/link/{attempt_id}/discard")
def discard(
    request: Request,
    attempt_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    try:
        service.discard_pending_link(db, services, user=user, attempt_id=attempt_id)
    except SendwellError as error:
        return _outcome(
            request, "This account cannot be linked", error.message, status_code=error.status_code
        )
    return redirect_with_flash(request, SETTINGS_TAB, "Nothing was linked.", kind="warning")


@router.get("/mailboxes/admin-approval/{provider}")
def admin_approval_print(
    request: Request,
    provider: str,
    _user: User = Depends(current_user),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """A page to forward to the organisation's administrator."""
    chosen = services.sign_in(provider)
    return render(
        request,
        "mailboxes/admin_approval_print.html",
        {
            "label": provider_label(provider),
            "permissions": chosen.permissions,
            "consent_url": chosen.admin_consent_url(
                redirect_uri=services.redirect_uri(provider), state="admin-consent"
            ),
            "redirect_uri": services.redirect_uri(provider),
        },
    )


@router.get("/mailboxes/{mailbox_id}")
def email_settings(
    request: Request,
    mailbox_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _email_settings_page(request, db, user, mailbox_id)


@router.post("/mailboxes/{mailbox_id}/settings")
def save_settings(
    request: Request,
    mailbox_id: int,
    daily_cap: str = Form(""),
    min_gap_seconds: str = Form(""),
    display_name: str = Form(""),
    signature: str = Form(""),
    low_gap_confirmed: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    form = {
        "daily_cap": daily_cap,
        "min_gap_seconds": min_gap_seconds,
        "display_name": display_name,
        "signature": signature,
        "low_gap_confirmed": low_gap_confirmed,
    }
    try:
        service.update_settings(
            db,
            user=user,
            mailbox_id=mailbox_id,
            daily_cap=_whole(daily_cap, "daily limit"),
            min_gap_seconds=_whole(min_gap_seconds, "gap between emails"),
            display_name=display_name,
            signature=signature.replace("\r\n", "\n"),
            low_gap_confirmed=bool(low_gap_confirmed),
        )
    except SendwellError as error:
        return _email_settings_page(
            request,
            db,
            user,
            mailbox_id,
            form=form,
            error=error.message,
            status_code=error.status_code,
        )
    return redirect_with_flash(request, f"/mailboxes/{mailbox_id}", "Email settings saved.")


@router.post("/mailboxes/{mailbox_id}/domain-health")
def check_domain_now(
    request: Request,
    mailbox_id: int,
    selectors: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """Save the DKIM selectors named, then look the sending domain up now."""
    try:
        domain_checks.set_selectors(db, user, mailbox_id, selectors)
    except SendwellError as error:
        return _email_settings_page(
            request,
            db,
            user,
            mailbox_id,
            selectors=selectors,
            domain_error=error.message,
            status_code=error.status_code,
        )
    domain_checks.check_now(db, request.app.state.session_factory, services, user, mailbox_id)
    return redirect_with_flash(
        request, f"/mailboxes/{mailbox_id}#domain-health", "Domain health checked just now."
    )


@router.post("/mailboxes/{mailbox_id}/disconnect")
def disconnect(
    request: Request,
    mailbox_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    mailbox = service.disconnect(db, services, user=user, mailbox_id=mailbox_id)
    return redirect_with_flash(
        request, SETTINGS_TAB, f"{mailbox.email} is disconnected. Its history is kept."
    )


@router.get("/mailboxes/{mailbox_id}/resume-all")
def resume_all_page(
    request: Request,
    mailbox_id: int,
    catch_up: str = "",
    skip_days: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """What Resume all will do for each campaign this account's connection change paused."""
    mailbox = service.get_mailbox(db, user, mailbox_id)  # someone else's account: a 404 page
    interval = resuming.send_interval(db, services, mailbox_id)
    error = ""
    try:
        plans = resuming.resume_all_preview(
            db, user, mailbox_id, catch_up=catch_up, skip_days=skip_days, host_interval=interval
        )
    except InvalidInput as problem:
        error = problem.message
        plans = resuming.resume_all_preview(db, user, mailbox_id, host_interval=interval)
    if not plans:
        return redirect_with_flash(
            request, SETTINGS_TAB, "No campaign was waiting on this account."
        )
    if mailbox.status is not MailboxStatus.CONNECTED:
        return redirect_with_flash(
            request,
            SETTINGS_TAB,
            f"{mailbox.email} needs reauthentication. Reconnect it, then resume.",
            kind="error",
        )
    return render(
        request,
        "campaigns/resume.html",
        {
            "plans": plans,
            "choice": None if not catch_up else plans[0][1].choice,
            "choice_form": {"catch_up": catch_up, "skip_days": skip_days},
            "error": error,
            "back": SETTINGS_TAB,
            "action": f"/mailboxes/{mailbox_id}/resume-all",
            "title": f"Resume the campaigns paused on {mailbox.email}",
            "pause_words": campaigns.pause_reason_words,
            "confirm_label": "Resume all",
            "each_own": True,
        },
        status_code=422 if error else 200,
    )


@router.post("/mailboxes/{mailbox_id}/resume-all")
def resume_all(
    request: Request,
    mailbox_id: int,
    confirmed: str = Form(""),
    catch_up: str = Form(""),
    skip_days: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """Resume every campaign this account's disconnect or reauthentication paused, once its
    preview was seen."""
    service.get_mailbox(db, user, mailbox_id)  # someone else's account is a 404 page
    if not confirmed:
        return RedirectResponse(f"/mailboxes/{mailbox_id}/resume-all", status_code=303)
    try:
        resumed = resuming.resume_paused_by_mailbox(
            db,
            user,
            mailbox_id,
            catch_up=catch_up,
            skip_days=skip_days,
            host_interval=resuming.send_interval(db, services, mailbox_id),
        )
    except SendwellError as error:
        return redirect_with_flash(request, SETTINGS_TAB, error.message, kind="error")
    names = ", ".join(f"“{c.name}”" for c in resumed)
    message = (
        f"Resumed {len(resumed)} campaign{'s' if len(resumed) != 1 else ''}: {names}. "
        "Sending continues from where each left off."
        if resumed
        else "No campaign was waiting on this account."
    )
    return redirect_with_flash(request, SETTINGS_TAB, message)


@router.post("/mailboxes/{mailbox_id}/reauthenticate")
def reauthenticate(
    request: Request,
    mailbox_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    mailbox = service.get_mailbox(db, user, mailbox_id)
    if not mailbox.provider.has_sign_in_page:
        return RedirectResponse(f"/mailboxes/{mailbox_id}/password", status_code=303)
    url = service.start_link(
        db,
        services,
        user=user,
        email=mailbox.email,
        provider_name=mailbox.provider,
        session_secret=request.cookies.get(SESSION_COOKIE),
    )
    return RedirectResponse(url, status_code=303)


def _email_settings_page(
    request: Request,
    db: Session,
    user: User,
    mailbox_id: int,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    selectors: str | None = None,
    domain_error: str = "",
    status_code: int = 200,
) -> Response:
    shown = views.email_settings_page(
        db,
        user,
        mailbox_id,
        form=form,
        error=error,
        selectors=selectors,
        domain_error=domain_error,
    )
    return render(request, "mailboxes/detail.html", shown, status_code=status_code)


def _whole(raw: str, what: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw.strip().replace(",", ""))
    except ValueError:
        raise InvalidInput(f"The {what} must be a whole number.", code="not_a_number") from None


def _configured(services: ProviderServices) -> list[tuple[str, str]]:
    return [(name.value, name.choice) for name in services.linkable()]


def linked_page(request: Request, result: service.Linked) -> Response:
    """Back to Settings, saying the account is connected or reconnected."""
    mailbox = result.mailbox
    message = (
        f"{mailbox.email} is reconnected."
        if result.reconnected
        else f"{mailbox.email} is connected."
    )
    if result.replaced:
        message += (
            f" {mailbox.provider.label} reports a different account than "
            "before for this address (it was re-created), so it was linked as a new "
            "account; the old one stays disconnected with its history."
        )
    return redirect_with_flash(request, SETTINGS_TAB, message)


def _outcome(
    request: Request,
    title: str,
    message: str,
    *,
    retry: bool = False,
    email: str = "",
    detail: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "mailboxes/outcome.html",
        {"title": title, "message": message, "retry": retry, "email": email, "detail": detail},
        status_code=status_code,
    )


def _admin_approval(
    request: Request, services: ProviderServices, provider: str, email: str, code: str
) -> Response:
    chosen = services.sign_in(provider)
    return render(
        request,
        "mailboxes/admin_approval.html",
        {
            "label": provider_label(provider),
            "email": email,
            "code": code,
            "provider": provider,
            "consent_url": chosen.admin_consent_url(
                redirect_uri=services.redirect_uri(provider), state="admin-consent"
            ),
        },
        status_code=403,
    )


def _missing_permissions(
    request: Request, services: ProviderServices, provider: str, email: str, missing: frozenset[str]
) -> Response:
    permissions = [p for p in services.sign_in(provider).permissions if p.scope in missing]
    return render(
        request,
        "mailboxes/missing_permissions.html",
        {
            "label": provider_label(provider),
            "email": email,
            "permissions": permissions,
        },
        status_code=403,
    )
