"""The hosts' own limits, as their real services report them, through the sandbox over HTTP.

Gmail may accept a send and bounce it minutes later for its sending limit: that message was
never delivered, so it goes again later and its recipient is not taken for a bad address.
Outlook refuses to send from a full mailbox: the campaigns pause with its reason. Graph's
throttling time may be fractional, and the mailbox waits exactly that long.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from sendwell.db import session_scope
from sendwell.dispatch.inbound import kind_of
from sendwell.kit.clock import utcnow
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    PauseReason,
    SendLedger,
    Suppression,
)
from sendwell.providers.base import InboundMessage, ProviderName
from tests.conftest import Database
from tests.dispatch.conftest import SENDER, World, linked_world
from tests.dispatch.hosts import SandboxHost
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

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


def test_an_outlook_mailbox_never_sends_faster_than_exchange_takes(
    database: Database, engine: Engine, sandbox: Sandbox
) -> None:
    """Exchange Online holds back more than 30 messages a minute; Sendwell keeps under it
    even for a mailbox with no gap of its own."""
    with linked_world(
        database, engine, sandbox, lambda c: link(c, OUTLOOK), microsoft_min_send_seconds=2.0
    ) as world:
        world.campaign(TWO_STEPS[:1], [*PEOPLE, "cy@example.com"], sender=OUTLOOK)
        dispatcher = world.dispatcher()
        deadline = time.monotonic() + 30
        while len(world.sent(OUTLOOK)) < 3 and time.monotonic() < deadline:
            dispatcher.run_until_idle()
            time.sleep(0.2)
        moments = sorted(datetime.fromisoformat(m["sent_at"]) for m in world.sent(OUTLOOK))
    assert len(moments) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    # Measured by the host, a network hop after the pacing: a little slack for that hop.
    assert all(gap >= timedelta(seconds=1.8) for gap in gaps), gaps


def test_a_late_outlook_copy_is_waited_for_not_sent_again(world: World) -> None:
    """Graph files its copy after the answer; a send whose answer was lost is not judged
    unsent while its copy may still come."""
    link(world.client, OUTLOOK)
    campaign_id = world.campaign(TWO_STEPS[:1], PEOPLE[:1], sender=OUTLOOK)
    world.sandbox.admin("mailbox-settings", {"mailbox": OUTLOOK, "sent_copy_delay": 2})
    world.sandbox.admin("faults", {"mailbox": OUTLOOK, "fault": "drop_after_accept"})
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()  # the answer is lost; the copy is not in Sent yet
    [row] = world.ledger(campaign_id)
    assert row.status is LedgerStatus.UNKNOWN
    assert len(world.sent(OUTLOOK)) == 1
    time.sleep(2.2)
    with session_scope(world.factory) as db:
        db.execute(update(SendLedger).values(lease_until=utcnow() - timedelta(seconds=1)))
    dispatcher.run_until_idle()
    [row] = world.ledger(campaign_id)
    assert row.status is LedgerStatus.SENT
    assert row.message_id_header == world.sent(OUTLOOK)[0]["headers"]["Message-ID"]
    assert len(world.sent(OUTLOOK)) == 1, "sent once"


def notice(subject: str, sender: str, **headers: str) -> InboundMessage:
    return InboundMessage(
        provider_message_id="n1",
        thread_id="t1",
        message_id_header="<n1@mx.example>",
        from_address=sender,
        subject=subject,
        received_at=utcnow(),
        in_reply_to="<ours@example>",
        headers={"Content-Type": "multipart/report; report-type=delivery-status", **headers},
    )


def test_only_a_gmail_failure_naming_no_recipient_is_a_sending_limit() -> None:
    google = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    failure = "Delivery Status Notification (Failure)"
    assert kind_of(notice(failure, google), host=ProviderName.GOOGLE) == "sending_limit"
    named = notice(failure, google, **{"X-Failed-Recipients": "ann@example.com"})
    assert kind_of(named, host=ProviderName.GOOGLE) == "bounce"
    # Still trying: nothing failed, no one is stopped and nothing is sent again.
    delay = notice("Delivery Status Notification (Delay)", google)
    assert kind_of(delay, host=ProviderName.GOOGLE) == "delay"
    # Google's daemon writing to an Outlook mailbox is a recipient's bounce, not our limit.
    assert kind_of(notice(failure, google), host=ProviderName.MICROSOFT) == "bounce"


def test_a_send_of_unknown_outcome_does_not_take_a_copy_another_send_owns(
    world: World,
) -> None:
    """Two sends to one person with one subject from one Outlook mailbox: the one that went
    (ids not learnt yet) keeps its copy; the one whose answer never came finds none."""
    link(world.client, OUTLOOK)
    world.sandbox.admin("mailbox-settings", {"mailbox": OUTLOOK, "sent_copy_delay": 1})
    first = world.campaign(TWO_STEPS[:1], PEOPLE[:1], sender=OUTLOOK)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()  # accepted: its copy shows a second later
    world.sandbox.admin("timeout", {"seconds": 6})
    world.sandbox.admin("faults", {"mailbox": OUTLOOK, "fault": "timeout"})
    second = world.campaign(TWO_STEPS[:1], PEOPLE[:1], sender=OUTLOOK)
    dispatcher.run_until_idle()  # times out: its outcome is unknown, nothing was stored
    time.sleep(1.2)
    with session_scope(world.factory) as db:
        db.execute(update(SendLedger).values(lease_until=utcnow() - timedelta(seconds=1)))
    dispatcher.run_until_idle()
    [sent_row] = world.ledger(first)
    [unknown_row] = world.ledger(second)
    [copy] = world.sent(OUTLOOK)
    assert sent_row.status is LedgerStatus.SENT
    assert sent_row.provider_message_id == copy["id"]
    assert unknown_row.status is LedgerStatus.UNKNOWN, "still waiting, not judged sent"
    assert unknown_row.provider_message_id == ""


def test_a_send_claimed_before_subjects_were_kept_is_still_found(world: World) -> None:
    """Rows claimed before the upgrade have no subject: it is rendered again to find them."""
    link(world.client, OUTLOOK)
    campaign_id = world.campaign(TWO_STEPS[:1], PEOPLE[:1], sender=OUTLOOK)
    world.sandbox.admin("faults", {"mailbox": OUTLOOK, "fault": "drop_after_accept"})
    dispatcher = world.dispatcher(settle_grace=timedelta(hours=1))
    dispatcher.run_until_idle()
    with session_scope(world.factory) as db:
        db.execute(
            update(SendLedger).values(subject="", lease_until=utcnow() - timedelta(seconds=1))
        )
    dispatcher.run_until_idle()
    [row] = world.ledger(campaign_id)
    assert row.status is LedgerStatus.SENT
    assert len(world.sent(OUTLOOK)) == 1


def test_a_reply_read_late_still_stops_the_follow_up(world: World) -> None:
    """A follow-up falls due while the inbox has not been read since Ann replied, and while
    Graph has not filed the copy of the account's newest send in Sent Items (only the copy
    tells which sends a reply answers). It waits for a read: Ann gets nothing more, Bob
    gets his follow-up."""
    link(world.client, OUTLOOK)
    world.sandbox.admin("mailbox-settings", {"mailbox": OUTLOOK, "sent_copy_delay": 2})
    host = SandboxHost("microsoft", OUTLOOK, world.sandbox)
    follow_up_tomorrow = [TWO_STEPS[0], ("", "Following up.", 24 * 60)]
    campaign_id = world.campaign(follow_up_tomorrow, PEOPLE, sender=OUTLOOK)
    later = world.campaign(TWO_STEPS[:1], ["cy@example.com"], sender=OUTLOOK)
    world.postpone(later, ["cy@example.com"], by=timedelta(hours=1))
    # The inbox is read on its own only hourly: what is read before a follow-up is the
    # engine's doing.
    dispatcher = world.dispatcher(inbound_interval=timedelta(hours=1))
    dispatcher.run_until_idle()  # the first step to Ann and Bob
    deadline = time.monotonic() + 30
    while any(not row.message_id_header for row in world.ledger(campaign_id)):
        assert time.monotonic() < deadline, "Sent Items never showed the first step"
        time.sleep(0.2)
        dispatcher.run_until_idle()
    host.reply(host.received("ann@example.com")[0])
    world.due_now(later)
    dispatcher.run_until_idle()  # Cy's email: its copy shows 2 s later
    world.due_now(campaign_id)
    deadline = time.monotonic() + 60
    while len(host.received("bob@example.com")) < 2 and time.monotonic() < deadline:
        dispatcher.run_until_idle()
        time.sleep(0.2)
    assert len(host.received("bob@example.com")) == 2, "Bob's follow-up went"
    assert len(host.received("ann@example.com")) == 1, "no follow-up after her reply"
    assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
