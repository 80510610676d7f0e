"""Pages: the Replies tab, the Replies sections of the campaign and recipient pages, interest
marks, and an IMAP/SMTP account's webmail address."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes import service as mailboxes
from sendwell.mailboxes.web import load_alerts
from sendwell.models import Interest, User
from sendwell.replies import service, views
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
    back = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    shown = views.replies_tab(db, user, campaign=campaign, interest=interest, back=back)
    return render(request, "messaging/replies.html", shown)


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


templates.env.globals["replies_panel"] = views.replies_panel
