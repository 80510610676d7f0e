"""What Start will do, shown before it is done: who gets the first email, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.campaigns import service, validation
from sendwell.dispatch import resume
from sendwell.kit.errors import Conflict
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.models import Campaign, User


@dataclass(frozen=True)
class StartPreview:
    campaign_id: int
    # Recipients who get the first email (everyone who has received nothing yet).
    recipients: int
    # The first email's expected moment (UTC): after the start delay, in the sending window,
    # behind the account's other campaigns, at its pace.
    first_send_at: datetime
    mailbox_email: str
    start_delay_minutes: int
    timezone: str

    def payload(self) -> dict[str, object]:
        return {
            "campaign_id": self.campaign_id,
            "recipients": self.recipients,
            "first_send_at": self.first_send_at,
            "mailbox": self.mailbox_email,
            "start_delay_minutes": self.start_delay_minutes,
            "timezone": self.timezone,
        }


def startable(db: Session, user: User, campaign_id: int) -> Campaign:
    """The campaign, if Start would succeed now: a draft, a sender allowed to send from its
    account, and every step rendering for every recipient (CampaignNotReady lists why not)."""
    campaign = service.get_campaign(db, user, campaign_id)
    allowed, _to, refusal = service.TRANSITIONS["start"]
    if campaign.status not in allowed:
        raise Conflict(
            f"{refusal} This one is {service.status_label(campaign).lower()}.",
            code="illegal_transition",
        )
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    if mailbox is not None:
        service.check_sender(db, campaign, mailbox)
    problems, total = validation.validate(db, campaign)
    if total:
        raise validation.CampaignNotReady(problems, total)
    return campaign


def preview(
    db: Session, user: User, campaign_id: int, *, now: datetime, host_interval: timedelta
) -> StartPreview:
    """What Start would do at `now`; refused as Start itself would be."""
    campaign = startable(db, user, campaign_id)
    due = now + timedelta(minutes=campaign.start_delay_minutes)
    first = resume.first_send_at(db, campaign, due=due, host_interval=host_interval)
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    return StartPreview(
        campaign_id=campaign.id,
        recipients=repo.count_unstarted(db, campaign.id),
        first_send_at=first,
        mailbox_email=mailbox.email if mailbox else "",
        start_delay_minutes=campaign.start_delay_minutes,
        timezone=campaign.timezone,
    )
