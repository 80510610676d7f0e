"""JSON routes before sending: what Start will do, and a test email to oneself."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.campaigns import service
from sendwell.campaigns.editor_web import unsubscribe_links
from sendwell.dispatch import resuming, start_preview, test_send
from sendwell.kit.clock import utcnow
from sendwell.kit.schemas import RequestBody
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import User
from sendwell.web.deps import get_db, get_services

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


class StartPreviewOut(BaseModel):
    campaign_id: int
    recipients: int = Field(description="Recipients who get the first email when it starts.")
    first_send_at: datetime = Field(
        description="When the first email is expected to go (UTC): after the start delay, in "
        "the sending window, at the account's pace."
    )
    mailbox: str = Field(description="The address the emails are sent from.")
    start_delay_minutes: int
    timezone: str


class TestSendIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(default=1, ge=1, description="The step to send, 1 for the first email.")
    recipient_id: int | None = Field(
        default=None, ge=1, description="Render for this recipient; the sample when omitted."
    )
    to: str | None = Field(
        default=None,
        max_length=320,
        description="Your own address (the default), a teammate's or the sending account's.",
    )


class TestSendOut(BaseModel):
    __test__ = False
    to: str
    subject: str = Field(description="The subject as sent, starting with “[Test] ”.")
    step: int
    recipient: str = Field(description="Whose merge-field values the test was rendered with.")
    mailbox: str


@router.get(
    "/{campaign_id}/start-preview",
    response_model=StartPreviewOut,
    summary="What Start would do now: recipients, the first send time and the account",
)
def get_start_preview(
    campaign_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> StartPreviewOut:
    """Refused as `POST …/start` would be (not a draft, problems to fix, sender not allowed)."""
    campaign = service.get_campaign(db, user, campaign_id)
    shown = start_preview.preview(
        db,
        user,
        campaign_id,
        now=utcnow(),
        host_interval=resuming.send_interval(db, services, campaign.mailbox_id),
    )
    return StartPreviewOut.model_validate(shown.payload())


@router.post(
    "/{campaign_id}/test-send",
    response_model=TestSendOut,
    summary="Send one step, rendered for a recipient, to yourself through the campaign's account",
)
def post_test_send(
    request: Request,
    campaign_id: int,
    body: TestSendIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> TestSendOut:
    """Subject prefixed “[Test] ”; never recorded as a send, never counted against the
    recipient. At most 10 a minute per user; refused while the account is not connected."""
    sent = test_send.send_test(
        db,
        request.app.state.session_factory,
        services,
        unsubscribe_links(request),
        user,
        campaign_id,
        step=body.step,
        recipient_id=body.recipient_id,
        to=body.to or "",
        now=utcnow(),
    )
    return TestSendOut(
        to=sent.to,
        subject=sent.subject,
        step=sent.step,
        recipient=sent.recipient_email,
        mailbox=sent.mailbox_email,
    )
