"""The features' event subscriptions: who hears a change, in which order, in which transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import subscribers as campaign_subscribers
from sendwell.db import session_scope
from sendwell.kit import events
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes.service import transition
from sendwell.models import (
    Campaign,
    CampaignStatus,
    MailboxEventKind,
    MailboxStatus,
    PauseReason,
    WebhookEvent,
)
from sendwell.webhooks import subscribers as webhook_subscribers
from sendwell.webhooks.service import EVENT_TYPES
from tests.dispatch.conftest import World
from tests.webhooks.conftest import Receiver, register

ONE_STEP = [("Hello {{ first_name }}", "Hi.", 0)]


class Refused(Exception):
    """Something later in the unit of work failed."""


def test_a_mailbox_change_is_heard_by_the_outbox_then_by_campaigns() -> None:
    heard = events.subscribers_of(events.MailboxStatusChanged)
    assert heard[:2] == [
        webhook_subscribers._mailbox_status_changed,
        campaign_subscribers.pause_on_mailbox_change,
    ]


def test_nothing_is_published_before_the_features_are_wired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "_wired", False)
    event = events.CampaignStatusChanged(campaign_id=1, kind="paused", reason="")
    with pytest.raises(events.NotWired, match="CampaignStatusChanged published before"):
        events.publish(Session(), event)


def _break_mailbox(world: World, *, then_fail: bool) -> None:
    with session_scope(world.factory) as db:
        mailbox = mailbox_repo.get_mailbox(db, world.mailbox_id())
        assert mailbox is not None
        transition(
            db,
            mailbox,
            MailboxStatus.REAUTH_REQUIRED,
            kind=MailboxEventKind.REAUTH_REQUIRED,
            reason="Access was revoked.",
        )
        if then_fail:
            raise Refused


def test_a_break_its_pauses_and_their_webhooks_are_one_transaction(
    world: World, receiver: Receiver
) -> None:
    register(world, f"{receiver.url}/in", list(EVENT_TYPES))
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])

    with pytest.raises(Refused):
        _break_mailbox(world, then_fail=True)
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.ACTIVE
        before = list(db.scalars(select(WebhookEvent.type).order_by(WebhookEvent.id)))
    assert "mailbox.reauth_required" not in before

    _break_mailbox(world, then_fail=False)
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.PAUSED
        assert campaign.pause_reason is PauseReason.MAILBOX_REAUTH_REQUIRED
        after = list(db.scalars(select(WebhookEvent.type).order_by(WebhookEvent.id)))
    assert after[len(before) :] == ["mailbox.reauth_required", "campaign.paused"]
