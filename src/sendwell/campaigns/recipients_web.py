"""The actions on recipients from the campaign page's table and from a recipient's page
(what the table shows is `recipients_views`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.campaigns import service
from sendwell.campaigns.recipient_actions import Action
from sendwell.dispatch import pausing
from sendwell.kit.errors import SendwellError
from sendwell.models import User
from sendwell.web.deps import get_db
from sendwell.web.pages import redirect_with_flash

router = APIRouter()


@router.post("/campaigns/{campaign_id}/recipients/actions")
def recipient_action(
    request: Request,
    campaign_id: int,
    action: str = Form(""),
    ids: list[int] = Form([]),
    to_campaign_id: int | None = Form(None),
    back: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """Pause, resume, remove, mark as replied or move the chosen recipients, then go back to
    the table (with its filters) or the recipient's page."""
    campaign = service.get_campaign(db, user, campaign_id)  # someone else's: a 404 page
    target = _back(campaign.id, back)
    try:
        chosen = Action(action)
    except ValueError:
        return redirect_with_flash(request, target, "Choose an action.", kind="error")
    try:
        report = pausing.act_on_recipients(
            db,
            request.app.state.session_factory,
            user,
            campaign.id,
            action=chosen,
            ids=ids,
            to_campaign_id=to_campaign_id,
        )
    except SendwellError as error:
        return redirect_with_flash(request, target, error.message, kind="error")
    return redirect_with_flash(
        request, target, report.sentence(), kind="warning" if report.refused else "success"
    )


def _back(campaign_id: int, back: str) -> str:
    """Where to return: a page of this campaign (the table with its filters, or a recipient),
    never anywhere else."""
    own = f"/campaigns/{campaign_id}"
    ours = back == own or back.startswith((own + "?", own + "#", own + "/recipients/"))
    if ours and "//" not in back and "\\" not in back:
        return back
    return own + "#recipients"
