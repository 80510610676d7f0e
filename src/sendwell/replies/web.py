"""Pages: the Replies tab, the Replies sections of the campaign and recipient pages, interest
marks, and an IMAP/SMTP account's webmail address."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.campaigns import repository as campaign_repo
from sendwell.db import session_scope
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes import service as mailboxes
from sendwell.mailboxes.web import load_alerts
from sendwell.models import Interest, ReplyKind, User
from sendwell.replies import service
from sendwell.replies.repository import Filters
from sendwell.web.deps import get_db
from sendwell.web.pages import redirect_with_flash, render, templates

router = APIRouter(dependencies=[Depends(load_alerts)])
REPLIES_TAB = "/messaging/replies"
MARKED = {
    Interest.INTERESTED: "{who} is marked Interested.",
    Interest.NOT_INTERESTED: "{who} is marked Not interested.",
    Interest.NONE: "{who}'s reply is no longer marked.",
}


@router.get(REPLIES_TAB)
def replies_tab(
    request: Request,
    campaign: str = "",
    interest: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    campaigns = campaign_repo.visible_campaigns(db, user)
    campaign_id = int(campaign) if campaign.isascii() and campaign.isdigit() else None
    error = ""
    if campaign and campaign_id not in {c.id for c in campaigns}:
        error, campaign_id = "That campaign is not one of yours: showing every campaign.", None
    try:
        chosen = service.parse_interest(interest) if interest else None
    except SendwellError as invalid:
        error, chosen = invalid.message, None
    replies = service.list_replies(
        db, user, Filters(campaign_id=campaign_id, kind=ReplyKind.REPLY, interest=chosen)
    )
    automatic = service.list_replies(
        db, user, Filters(campaign_id=campaign_id, kind=ReplyKind.AUTO_REPLY)
    )
    return render(
        request,
        "messaging/replies.html",
        {
            "tab": "replies",
            "campaigns": campaigns,
            "campaign_id": campaign_id,
            "interest": chosen.value if chosen else "",
            "interest_labels": service.INTEREST_LABELS,
            "replies": replies,
            "marked_by": {v.reply.id: service.marked_by_name(db, v.reply) for v in replies},
            "automatic": automatic,
            "filter_error": error,
            "back": str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            "limit": service.LIST_LIMIT,
        },
    )


@router.post("/replies/{reply_id}/interest")
def mark_reply(
    request: Request,
    reply_id: int,
    interest: str = Form(""),
    back: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    target = _back(back)
    service.get_reply(db, user, reply_id)  # someone else's reply is a 404 page
    try:
        view = service.mark(db, user, reply_id=reply_id, interest=service.parse_interest(interest))
    except SendwellError as error:
        return redirect_with_flash(request, target, error.message, kind="error")
    message = MARKED[view.reply.interest].format(who=view.enrollment.email)
    return redirect_with_flash(request, target, message)


@router.post("/mailboxes/{mailbox_id}/webmail")
def save_webmail(
    request: Request,
    mailbox_id: int,
    webmail_url: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    page = f"/mailboxes/{mailbox_id}"
    mailboxes.get_mailbox(db, user, mailbox_id)  # someone else's account is a 404 page
    try:
        saved = service.set_webmail(db, user, mailbox_id=mailbox_id, url=webmail_url)
    except SendwellError as error:
        return redirect_with_flash(request, page, error.message, kind="error")
    said = (
        f"Webmail address saved: replies' “Open thread” links go to {saved}."
        if saved
        else "Webmail address removed: replies to this account have no link."
    )
    return redirect_with_flash(request, page, said)


def _back(back: str) -> str:
    """Where a mark returns: one of our pages that lists replies, never elsewhere."""
    if back.startswith((REPLIES_TAB, "/campaigns/")) and "//" not in back:
        return back
    return REPLIES_TAB


def replies_panel(
    request: Request, *, campaign_id: int, enrollment_id: int | None = None
) -> dict[str, Any]:
    """What the Replies section of a campaign (or recipient) page shows.

    Those pages belong to the campaigns feature, which already checked that the user may see
    the campaign; the section reads its rows in a short session of its own, through the same
    visibility rule, so the campaign pages need no code of this feature.
    """
    user = getattr(request.state, "user", None)
    if user is None:
        return {"replies": [], "automatic": [], "counts": {}}
    with session_scope(request.app.state.session_factory) as db:
        viewer = db.get(User, user.id)
        if viewer is None:
            return {"replies": [], "automatic": [], "counts": {}}
        views = service.list_replies(
            db, viewer, Filters(campaign_id=campaign_id, enrollment_id=enrollment_id)
        )
        counts = service.counts(db, campaign_id)
        marked_by = {v.reply.id: service.marked_by_name(db, v.reply) for v in views}
        db.expunge_all()
    return {
        "replies": [v for v in views if v.reply.kind is ReplyKind.REPLY],
        "automatic": [v for v in views if v.reply.kind is ReplyKind.AUTO_REPLY],
        "counts": counts,
        "marked_by": marked_by,
    }


templates.env.globals["replies_panel"] = replies_panel
