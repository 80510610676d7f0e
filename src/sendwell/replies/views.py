"""What the Replies tab and the Replies section of a campaign or recipient page show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from sendwell.campaigns import repository as campaign_repo
from sendwell.db import session_scope
from sendwell.kit.errors import SendwellError
from sendwell.models import Campaign, Interest, ReplyKind, User
from sendwell.replies import service
from sendwell.replies.repository import Filters
from sendwell.replies.service import ReplyView


@dataclass(frozen=True)
class RepliesTab:
    """`messaging/replies.html`: replies and automatic replies to the user's campaigns, for
    one campaign or all, replies narrowed to an interest mark; a choice that is not one is
    said and shows everything."""

    campaigns: list[Campaign]
    campaign_id: int | None
    interest: str
    replies: list[ReplyView]
    marked_by: dict[int, str]
    automatic: list[ReplyView]
    filter_error: str
    # Where a mark returns: this list, as filtered.
    back: str
    tab: str = field(default="replies", init=False)
    interest_labels: dict[Interest, str] = field(
        default_factory=lambda: service.INTEREST_LABELS, init=False
    )
    limit: int = field(default=service.LIST_LIMIT, init=False)


def replies_tab(db: Session, user: User, *, campaign: str, interest: str, back: str) -> RepliesTab:
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
    return RepliesTab(
        campaigns=campaigns,
        campaign_id=campaign_id,
        interest=chosen.value if chosen else "",
        replies=replies,
        marked_by={v.reply.id: service.marked_by_name(db, v.reply) for v in replies},
        automatic=automatic,
        filter_error=error,
        back=back,
    )


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
