"""Resume, orchestrated: whether a paused campaign can resume now, what its Resume would do
(the plan in dispatch/resume.py), and Resume itself — the campaign made active and its plan
written in one transaction — for one campaign or all an account's change paused.

The campaign's own rules (its status machine, who may send from its account) stay in
campaigns/service.py; this module, in the sending engine's feature, composes them with the
plan, so the campaigns feature never reaches up to the engine."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from sendwell.campaigns import service as campaigns
from sendwell.dispatch import resume as resume_plan
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, SendwellError
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.models import Campaign, MailboxStatus, PauseReason, User

if TYPE_CHECKING:
    from sendwell.mailboxes.provider_services import ProviderServices


def send_interval(db: Session, services: ProviderServices, mailbox_id: int) -> timedelta:
    """The shortest time the mailbox's host allows between two sends (for estimates)."""
    mailbox = mailbox_repo.get_mailbox(db, mailbox_id)
    if mailbox is None:
        return timedelta(0)
    try:
        return services.mail_host(mailbox.provider).min_send_interval
    except SendwellError:
        return timedelta(0)  # a provider this server no longer offers: Resume says why


def resumable(db: Session, user: User, campaign_id: int) -> Campaign:
    """The campaign, if it can be resumed now: paused, and its account able to send."""
    campaign = campaigns.paused_campaign(db, user, campaign_id)
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    if mailbox is None or mailbox.status is not MailboxStatus.CONNECTED:
        address = mailbox.email if mailbox else "The sending account"
        state = (
            "is disconnected"
            if mailbox and mailbox.status is MailboxStatus.DISCONNECTED
            else "needs reauthentication"
        )
        action = (
            "Its owner must reconnect it on their Settings tab"
            if mailbox is not None and mailbox.owner_id != campaign.owner_id
            else "Reconnect it on the Settings tab"
        )
        raise Conflict(f"{address} {state}. {action}, then resume.", code="mailbox_not_connected")
    campaigns.check_sender(db, campaign, mailbox)
    return campaign


def resume_preview(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    catch_up: str | None = None,
    skip_days: int | str | None = None,
    host_interval: timedelta = timedelta(0),
) -> resume_plan.ResumePlan:
    """What Resume would do now with this catch-up choice (the campaign's own by default)."""
    campaign = campaigns.paused_campaign(db, user, campaign_id)
    choice = resume_plan.Choice.parse(catch_up, skip_days, campaign)
    return resume_plan.plan(db, campaign, choice, now=utcnow(), host_interval=host_interval)


def resume(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    catch_up: str | None = None,
    skip_days: int | str | None = None,
    host_interval: timedelta = timedelta(0),
) -> Campaign:
    """Back to Active, from where it left off, as the preview with the same choice shows;
    refused while the account cannot send."""
    campaign = resumable(db, user, campaign_id)
    choice = resume_plan.Choice.parse(catch_up, skip_days, campaign)
    plan = resume_plan.plan(db, campaign, choice, now=utcnow(), host_interval=host_interval)
    campaigns.mark_resumed(
        db,
        campaign,
        actor=user,
        reason=f"Resumed. {plan.summary()}",
        data={"catch_up": plan.payload()},
    )
    resume_plan.apply(db, plan)
    campaigns.settle_resumed(db, campaign)
    return campaign


def resume_paused_by_mailbox(
    db: Session,
    user: User,
    mailbox_id: int,
    reasons: tuple[PauseReason, ...] = campaigns.MAILBOX_REASONS,
    *,
    catch_up: str | None = None,
    skip_days: int | str | None = None,
    host_interval: timedelta = timedelta(0),
) -> list[Campaign]:
    """Resume all: every campaign the account's connection change (or, for a teammate's
    account, the end of its owner's approval) paused, none the user did; each with the given
    catch-up choice, or its own."""
    campaigns.check_mailbox_reach(db, user, mailbox_id)
    return [
        resume(
            db,
            user,
            campaign.id,
            catch_up=catch_up,
            skip_days=skip_days,
            host_interval=host_interval,
        )
        for campaign in campaigns.paused_by_mailbox(db, user, mailbox_id, reasons)
    ]


def resume_all_preview(
    db: Session,
    user: User,
    mailbox_id: int,
    reasons: tuple[PauseReason, ...] = campaigns.MAILBOX_REASONS,
    *,
    catch_up: str | None = None,
    skip_days: int | str | None = None,
    host_interval: timedelta = timedelta(0),
) -> list[tuple[Campaign, resume_plan.ResumePlan]]:
    """What Resume all would do for each campaign it would resume."""
    campaigns.check_mailbox_reach(db, user, mailbox_id)
    return [
        (
            campaign,
            resume_preview(
                db,
                user,
                campaign.id,
                catch_up=catch_up,
                skip_days=skip_days,
                host_interval=host_interval,
            ),
        )
        for campaign in campaigns.paused_by_mailbox(db, user, mailbox_id, reasons)
    ]
