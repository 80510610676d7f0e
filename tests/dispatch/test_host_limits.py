"""The hosts' own limits, as their real services report them, through the sandbox over HTTP.

Gmail may accept a send and bounce it minutes later for its sending limit: that message was
never delivered, so it goes again later and its recipient is not taken for a bad address.
Outlook refuses to send from a full mailbox: the campaigns pause with its reason. Graph's
throttling time may be fractional, and the mailbox waits exactly that long.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    PauseReason,
    Suppression,
)
from tests.dispatch.conftest import SENDER, World
from tests.mailboxes.conftest import link

OUTLOOK = "ada@contoso.outlook.test"
TWO_STEPS = [("Hello {{ first_name }}", "A quick question.", 0), ("", "Following up.", 0)]
PEOPLE = ["ann@example.com", "bob@example.com"]


def release_hold(world: World, email: str) -> None:
    with session_scope(world.factory) as db:
        db.execute(
            update(Mailbox)
            .where(Mailbox.email == email)
            .values(send_not_before=utcnow() - timedelta(seconds=1))
        )


def test_a_sending_limit_bounce_sends_the_message_again_later(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS[:1], PEOPLE)
    world.sandbox.admin("faults", {"mailbox": SENDER, "fault": "quota_bounce"})
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    delivered = [m for m in world.sent() if m["delivered"]]
    assert len(world.sent()) == 2
    assert len(delivered) == 1, "Gmail accepted both and bounced one"
    bounced_to = {a for m in world.sent() if not m["delivered"] for a in m["to"]}

    # The bounce is read: no one is marked bounced, and the mailbox waits before sending.
    with session_scope(world.factory) as db:
        assert db.scalars(select(Suppression)).all() == []
        mailbox = db.scalars(select(Mailbox).where(Mailbox.email == SENDER)).one()
        assert mailbox.send_not_before is not None
        assert mailbox.send_not_before > utcnow() + timedelta(minutes=50)
    statuses = {row.status for row in world.ledger(campaign_id)}
    assert statuses == {LedgerStatus.SENT, LedgerStatus.RETRY}
    assert world.enrollment(campaign_id, PEOPLE[0]).status is not EnrollmentStatus.BOUNCED

    release_hold(world, SENDER)
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    delivered = [m for m in world.sent() if m["delivered"]]
    assert len(delivered) == 2, "each recipient has the message exactly once"
    assert {a for m in delivered for a in m["to"]} >= bounced_to
    assert {row.status for row in world.ledger(campaign_id)} == {LedgerStatus.SENT}
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.COMPLETED


def test_a_full_outlook_mailbox_pauses_its_campaigns_with_the_hosts_reason(world: World) -> None:
    link(world.client, OUTLOOK)
    campaign_id = world.campaign(TWO_STEPS[:1], PEOPLE, sender=OUTLOOK)
    world.sandbox.admin("faults", {"mailbox": OUTLOOK, "fault": "mailbox_full"})
    world.dispatcher().run_until_idle()
    assert world.sent(OUTLOOK) == []
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert (campaign.status, campaign.pause_reason) == (
            CampaignStatus.PAUSED,
            PauseReason.MAILBOX_BLOCKED,
        )
        [event] = db.scalars(
            select(CampaignEvent).where(
                CampaignEvent.campaign_id == campaign_id, CampaignEvent.kind == "paused"
            )
        ).all()
    assert "Outlook refuses to send from this mailbox" in event.reason
    assert {row.status for row in world.ledger(campaign_id)} == {LedgerStatus.RETRY}
    assert {row.attempts for row in world.ledger(campaign_id)} == {0}


def test_a_fractional_retry_after_holds_the_mailbox_that_long(world: World) -> None:
    link(world.client, OUTLOOK)
    world.campaign(TWO_STEPS[:1], PEOPLE, sender=OUTLOOK)
    world.sandbox.admin("faults", {"mailbox": OUTLOOK, "fault": "rate_limit_fractional"})
    before = utcnow()
    world.dispatcher().run_once()
    with session_scope(world.factory) as db:
        mailbox = db.scalars(select(Mailbox).where(Mailbox.email == OUTLOOK)).one()
        held = mailbox.send_not_before
    assert held is not None
    assert timedelta(seconds=2.1) <= held - before <= timedelta(seconds=4), held - before
