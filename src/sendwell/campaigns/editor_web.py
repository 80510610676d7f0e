"""Before sending: a step as a recipient receives it, a test to oneself, and Start confirmed."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.campaigns import service, views
from sendwell.dispatch import resuming, start_preview, test_send
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.web import load_alerts
from sendwell.models import User
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter(dependencies=[Depends(load_alerts)])


def unsubscribe_links(request: Request) -> UnsubscribeLinks:
    """The links the sending engine puts in every email (same key, same lifetime)."""
    settings = get_settings(request)
    return UnsubscribeLinks(settings.base_url, settings.secret_key, settings.unsubscribe_lifetime)


@router.get("/campaigns/{campaign_id}/start")
def start_page(
    request: Request,
    campaign_id: int,
    back: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    """Start, confirmed: how many get the first email, when it goes, and from which account."""
    campaign = service.get_campaign(db, user, campaign_id)  # someone else's: a 404 page
    target = back if back.startswith(("/campaigns/", "/messaging/campaigns")) else ""
    target = target or f"/campaigns/{campaign_id}"
    try:
        shown = start_preview.preview(
            db,
            user,
            campaign_id,
            now=utcnow(),
            host_interval=resuming.send_interval(db, services, campaign.mailbox_id),
        )
    except SendwellError as error:
        return redirect_with_flash(
            request, f"/campaigns/{campaign_id}", error.message, kind="error"
        )
    return render(
        request,
        "campaigns/start.html",
        {"campaign": campaign, "preview": shown, "back": target},
    )


@router.get("/campaigns/{campaign_id}/message")
def message_page(
    request: Request,
    campaign_id: int,
    step: int = 1,
    recipient: int = 0,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """A step as one recipient (or the sample recipient) receives it, with "Send a test"."""
    shown = views.message_page(
        db, user, unsubscribe_links(request), campaign_id, step=step, recipient=recipient
    )
    return render(request, "campaigns/message.html", shown, status_code=422 if shown.error else 200)


@router.post("/campaigns/{campaign_id}/test-send")
def send_test(
    request: Request,
    campaign_id: int,
    step: int = Form(1),
    recipient: int = Form(0),
    to: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    page = f"/campaigns/{campaign_id}/message?{urlencode({'step': step, 'recipient': recipient})}"
    try:
        sent = test_send.send_test(
            db,
            request.app.state.session_factory,
            services,
            unsubscribe_links(request),
            user,
            campaign_id,
            step=step,
            recipient_id=recipient or None,
            to=to,
            now=utcnow(),
        )
    except SendwellError as error:
        if error.status_code == 404:
            raise
        return redirect_with_flash(request, page, error.message, kind="error")
    return redirect_with_flash(
        request,
        page,
        f"A test of step {sent.step} (as {sent.recipient_email} receives it) was sent to "
        f"{sent.to} from {sent.mailbox_email}: “{sent.subject}”.",
    )
