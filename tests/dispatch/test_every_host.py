"""The sending promises, kept alike on Google, Microsoft and IMAP/SMTP mailboxes.

Every (recipient, step) arrives exactly once, follow-ups are threaded under the thread's
subject, a reply stops its sender's sequence, and a broken connection pauses the campaign
until the user reconnects and resumes, after which it continues from where it left off.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import select

from sendwell.db import session_scope
from sendwell.dispatch import resuming
from sendwell.dispatch.inbound import IDS_GRACE
from sendwell.models import (
    Campaign,
    CampaignStatus,
    EnrollmentStatus,
    MailboxStatus,
    PauseReason,
    User,
)
from tests.dispatch.conftest import World
from tests.dispatch.hosts import PEOPLE, Host, Received

THREE_STEPS = [
    ("Quick question, {{ first_name }}", "Hello {{ first_name }}, step one.", 0),
    ("", "Step two.", 1440),
    ("", "Step three.", 1440),
]


# A mailbox whose newest sends are not yet found in Sent is read up to IDS_GRACE late (its
# answers could not be matched before); on a busy machine Graph's Sent copies lag that long.
PATIENCE = IDS_GRACE.total_seconds() + 60


def run_until(
    world: World, campaign_id: int, done: Callable[[], bool], seconds: float = PATIENCE
) -> None:
    """Send, skipping each step's wait, until `done` (a host may show a copy late, and a
    mailbox waiting for its sends' ids is read up to IDS_GRACE later)."""
    dispatcher = world.dispatcher()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dispatcher.run_until_idle()
        world.due_now(campaign_id)
        if done():
            dispatcher.run_until_idle()
            return
        time.sleep(0.2)
    raise AssertionError("the campaign did not get there in time")


def assert_once_and_threaded(messages: list[Received], steps: int) -> None:
    assert len(messages) == steps, [m.subject for m in messages]
    assert len({m.message_id for m in messages}) == steps
    first = messages[0]
    for earlier, later in itertools.pairwise(messages):
        assert later.in_reply_to == earlier.message_id
        assert first.message_id in later.references
        assert later.subject == "Re: " + first.subject


def campaign_of(world: World, campaign_id: int) -> Campaign:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        db.expunge(campaign)
        return campaign


def test_three_steps_arrive_once_each_threaded(host_world: tuple[World, Host]) -> None:
    world, host = host_world
    campaign_id = world.campaign(THREE_STEPS, PEOPLE, sender=host.address)
    run_until(world, campaign_id, lambda: all(len(host.received(p)) == 3 for p in PEOPLE))
    for person in PEOPLE:
        received = host.received(person)
        assert_once_and_threaded(received, 3)
        assert received[0].subject == f"Quick question, {person.split('@')[0]}"
    assert campaign_of(world, campaign_id).status is CampaignStatus.COMPLETED


def test_a_reply_stops_only_its_sender(host_world: tuple[World, Host]) -> None:
    world, host = host_world
    campaign_id = world.campaign(THREE_STEPS, PEOPLE, sender=host.address)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()  # the first step; the next is a day away
    [first] = host.received("ann@example.com")
    host.reply(first)
    others = [p for p in PEOPLE if p != "ann@example.com"]
    run_until(world, campaign_id, lambda: all(len(host.received(p)) == 3 for p in others))
    assert len(host.received("ann@example.com")) == 1
    assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
    for person in others:
        assert_once_and_threaded(host.received(person), 3)


def test_a_broken_connection_pauses_and_resumes_from_where_it_left_off(
    host_world: tuple[World, Host],
) -> None:
    world, host = host_world
    campaign_id = world.campaign(THREE_STEPS, PEOPLE, sender=host.address)
    world.dispatcher().run_until_idle()  # the first step; the next is a day away
    host.break_connection()
    run_until(
        world, campaign_id, lambda: campaign_of(world, campaign_id).status is CampaignStatus.PAUSED
    )

    campaign = campaign_of(world, campaign_id)
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.MAILBOX_REAUTH_REQUIRED,
    )
    assert world.mailbox_status(host.address) is MailboxStatus.REAUTH_REQUIRED
    assert [len(host.received(p)) for p in PEOPLE] == [1, 1, 1], "nothing sent while broken"

    host.reconnect(world.client, world.mailbox_id(host.address))
    assert world.mailbox_status(host.address) is MailboxStatus.CONNECTED
    world.dispatcher().run_until_idle()
    assert [len(host.received(p)) for p in PEOPLE] == [1, 1, 1], "reconnecting alone sends none"
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        resuming.resume(db, user, campaign_id)
    run_until(world, campaign_id, lambda: all(len(host.received(p)) == 3 for p in PEOPLE))
    for person in PEOPLE:
        assert_once_and_threaded(host.received(person), 3)
    sent_ids = Counter(m.message_id for p in PEOPLE for m in host.received(p))
    assert set(sent_ids.values()) == {1}
    assert campaign_of(world, campaign_id).status is CampaignStatus.COMPLETED
