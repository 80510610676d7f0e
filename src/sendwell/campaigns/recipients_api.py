"""JSON routes for actions on a campaign's recipients: pause, resume, remove, mark as replied,
move to another campaign; one recipient or many in one request."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.campaigns.recipient_actions import MAX_PER_ACTION, Action
from sendwell.campaigns.schemas import RecipientOut
from sendwell.dispatch import pausing
from sendwell.kit.schemas import RequestBody
from sendwell.models import User
from sendwell.web.deps import get_db

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


class RecipientActionIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(
        description="pause (this recipient only), resume (their next step goes at the "
        "normal pace), remove, mark_replied, or move (to `to_campaign_id`)."
    )
    ids: list[int] = Field(
        description=f"Recipient ids of this campaign, at most {MAX_PER_ACTION:,}."
    )
    to_campaign_id: int | None = Field(
        None, description="For move: another campaign of the same owner."
    )


class RefusedOut(BaseModel):
    id: int
    email: str
    reason: str


class RecipientActionOut(BaseModel):
    action: Action
    message: str = Field(description="What happened, in one sentence.")
    changed: list[RecipientOut]
    refused: list[RefusedOut] = Field(
        description="Recipients who could not take the action, with the reason."
    )


@router.post(
    "/{campaign_id}/recipients/actions",
    response_model=RecipientActionOut,
    summary="Pause, resume, remove, mark as replied or move recipients",
    responses={409: {"description": "None of the recipients could take the action."}},
)
def recipient_action(
    request: Request,
    campaign_id: int,
    body: RecipientActionIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> RecipientActionOut:
    """When this answers, nothing more is handed to the mail host for recipients who were
    paused, removed, moved or marked as replied."""
    report = pausing.act_on_recipients(
        db,
        request.app.state.session_factory,
        user,
        campaign_id,
        action=body.action,
        ids=body.ids,
        to_campaign_id=body.to_campaign_id,
    )
    out = RecipientActionOut(
        action=report.action,
        message=report.sentence(),
        changed=[RecipientOut.model_validate(e) for e in report.changed],
        refused=[RefusedOut(id=r.id, email=r.email, reason=r.reason) for r in report.refused],
    )
    return out
