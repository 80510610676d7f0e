"""JSON routes: replies to your campaigns, and marking them interested or not."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.models import User
from sendwell.replies import service
from sendwell.replies.schemas import ReplyOut, ReplyPatch
from sendwell.web.deps import get_db

router = APIRouter(prefix="/replies", tags=["replies"])


@router.get(
    "",
    response_model=list[ReplyOut],
    summary="Replies and automatic replies to your campaigns, newest first (at most 500)",
)
def list_replies(
    campaign_id: int | None = Query(None, description="Only this campaign's replies."),
    kind: str = Query("", description="reply or auto_reply; both when empty."),
    interest: str = Query("", description="none, interested or not_interested; any when empty."),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> list[ReplyOut]:
    found = service.find_replies(db, user, campaign_id=campaign_id, kind=kind, interest=interest)
    return [_out(view) for view in found]


@router.patch(
    "/{reply_id}",
    response_model=ReplyOut,
    summary="Mark a reply interested, not interested, or neither (none)",
)
def patch_reply(
    reply_id: int,
    body: ReplyPatch,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> ReplyOut:
    return _out(service.mark(db, user, reply_id=reply_id, interest=body.interest))


def _out(view: service.ReplyView) -> ReplyOut:
    reply = view.reply
    return ReplyOut(
        id=reply.id,
        campaign_id=view.campaign.id,
        campaign_name=view.campaign.name,
        recipient_id=view.enrollment.id,
        recipient_email=view.enrollment.email,
        step=reply.step_position,
        received_at=reply.received_at,
        from_address=reply.from_address,
        subject=reply.subject,
        snippet=reply.snippet,
        kind=reply.kind,
        interest=reply.interest,
        marked_by_id=reply.marked_by_id,
        marked_at=reply.marked_at,
        thread_url=view.link.url or None,
        thread_note=view.link.note,
        provider_message_id=reply.provider_message_id,
        thread_id=reply.thread_id,
    )
