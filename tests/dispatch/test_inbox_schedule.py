"""Each inbox is read on its own schedule: every read interval while its mailbox sends or
receives, less and less often while it is quiet (down to once per quiet interval), and
always just before a follow-up goes. What the host sees is counted: Gmail's history.list
calls for the INBOX label, as the sandbox served them."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select, update

from sendwell.campaigns import recipients
from sendwell.db import session_scope
from sendwell.dispatch import repository as repo
from sendwell.dispatch.engine import Dispatcher
from sendwell.dispatch.inbound import next_interval
from sendwell.kit.clock import utcnow
from sendwell.models import EnrollmentStatus, Mailbox, User
from tests.dispatch.conftest import SENDER, World
from tests.dispatch.hosts import SandboxHost
from tests.dispatch.test_pause import running, wait_until
from tests.mailboxes.conftest import link

# The follow-up is a day away: after the first email nothing is due to send, and the campaign
# keeps running, so its inbox is read for replies.
TWO_STEPS = [
    ("Hello {{ first_name }}", "A quick question.", 0),
    ("", "Any news?", 1440),
]
INTERVAL = timedelta(seconds=1)
QUIET = timedelta(seconds=6)


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in pairwise(moments)]


def test_a_quiet_inbox_is_read_less_often_and_a_reply_still_comes_through(world: World) -> None:
    # Bob's follow-up keeps the campaign running (and its inbox read) after Ann answers.
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(inbound_interval=INTERVAL, inbound_quiet_interval=QUIET)
    with running(dispatcher):
        assert wait_until(
            lambda: all(len(host.received(p)) == 1 for p in ("ann@example.com", "bob@example.com")),
            15,
        )
        sent_at = time.monotonic()
        # Quiet: each read finds nothing and follows no send, so the waits double (2 s, 4 s)
        # and stay at the quiet interval.
        assert wait_until(lambda: len(world.sandbox.inbox_reads(sent_at)) >= 6, 60)
        quiet = gaps(world.sandbox.inbox_reads(sent_at))
        assert quiet[-1] >= 0.9 * QUIET.total_seconds(), quiet
        assert quiet[-2] >= 0.9 * QUIET.total_seconds(), quiet
        assert quiet[0] < quiet[-1], quiet
        # Read every second, the same 6 reads would have taken 5 s, not 15 or more.
        assert sum(quiet) >= 12.0, quiet

        host.reply(host.received("ann@example.com")[0])
        replied_at = time.monotonic()
        assert wait_until(
            lambda: (
                world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
            ),
            QUIET.total_seconds() + 10,
        )
        # The reply is seen by the next read on the quiet schedule, and the read that found
        # it brings the inbox back to the read interval.
        found = world.sandbox.inbox_reads(replied_at)
        assert found, "no inbox read after the reply"
        assert found[0] - replied_at <= QUIET.total_seconds() + 2, found
        assert wait_until(lambda: len(world.sandbox.inbox_reads(replied_at)) >= 3, 15)
        after = gaps(world.sandbox.inbox_reads(replied_at))
        assert min(after[:2]) < 0.75 * QUIET.total_seconds(), after


def test_a_follow_up_waits_for_a_fresh_read_however_quiet_the_inbox(world: World) -> None:
    """The inbox has gone quiet (its next read 8 s away, and further each time); the
    recipient answers and their follow-up falls due a moment later. The answer is read before
    the follow-up could go, not at the next quiet read: the follow-up is never sent."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(
        inbound_interval=INTERVAL, inbound_quiet_interval=timedelta(minutes=1)
    )
    with running(dispatcher):
        assert wait_until(
            lambda: all(len(host.received(p)) == 1 for p in ("ann@example.com", "bob@example.com")),
            15,
        )
        sent_at = time.monotonic()
        # Read at 1 s, then 2 s, then 4 s after that: the next one is 8 s away.
        assert wait_until(lambda: len(world.sandbox.inbox_reads(sent_at)) >= 3, 20)
        host.reply(host.received("ann@example.com")[0])
        world.due_now(campaign_id, ago=timedelta(0))
        assert wait_until(lambda: len(host.received("bob@example.com")) == 2, 15)
        assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
        assert len(host.received("ann@example.com")) == 1


def test_a_send_brings_a_quiet_inboxs_next_read_forward(world: World) -> None:
    """A bounce comes soon after its send: a quiet inbox whose next read is far away is read
    a read interval after its mailbox sends again, not at the next quiet read."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(
        inbound_interval=INTERVAL, inbound_quiet_interval=timedelta(minutes=1)
    )
    with running(dispatcher):
        assert wait_until(lambda: len(host.received("ann@example.com")) == 1, 15)
        sent_at = time.monotonic()
        # Read 1, 2, 4, 8 and 16 s apart: the next read is 32 s away.
        assert wait_until(lambda: len(world.sandbox.inbox_reads(sent_at)) >= 5, 45)
        with session_scope(world.factory) as db:
            user = db.scalars(select(User)).first()
            assert user is not None
            recipients.add_recipients(
                db, user, campaign_id, [recipients.RecipientIn("cy@example.com", first_name="Cy")]
            )
        assert wait_until(lambda: len(host.received("cy@example.com")) == 1, 15)
        second_send = time.monotonic()
        assert wait_until(lambda: bool(world.sandbox.inbox_reads(second_send)), 40)
        assert world.sandbox.inbox_reads(second_send)[0] - second_send < 10.0


@pytest.mark.parametrize(
    ("previous", "busy", "expected"),
    [
        (None, False, 60),  # no schedule yet: the read interval
        (60, True, 60),  # found messages, or followed a send
        (300, True, 60),  # ... however quiet it had been
        (60, False, 120),  # quiet: twice the wait
        (120, False, 240),
        (240, False, 300),  # never past the quiet interval
        (300, False, 300),
        (0, False, 60),  # a read brought forward to now waits the read interval at least
    ],
)
def test_the_wait_after_a_read(previous: int | None, busy: bool, expected: int) -> None:
    wait = next_interval(
        timedelta(seconds=60),
        timedelta(seconds=300),
        None if previous is None else timedelta(seconds=previous),
        busy=busy,
    )
    assert wait == timedelta(seconds=expected)


def test_a_quiet_interval_shorter_than_the_read_interval_counts_as_the_read_interval() -> None:
    assert next_interval(
        timedelta(seconds=60), timedelta(seconds=10), timedelta(seconds=60), busy=False
    ) == timedelta(seconds=60)


def read_once_and_due_again(world: World, dispatcher: Dispatcher) -> int:
    """The inbox read once (its cursor set), then due again now; its mailbox's id."""
    dispatcher.inbound.read_due()
    mailbox_id = world.mailbox_id()
    with session_scope(world.factory) as db:
        db.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(inbound_read_due_at=utcnow() - timedelta(seconds=1))
        )
    return mailbox_id


def test_two_workers_walking_the_same_due_inboxes_read_each_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both workers list the inbox as due before either reads it: the one that takes it
    reads it, the other leaves it; the host sees one read."""
    world.campaign(TWO_STEPS, ["ann@example.com"])
    first = world.dispatcher(inbound_interval=timedelta(minutes=1))
    second = world.dispatcher(inbound_interval=timedelta(minutes=1))
    mailbox_id = read_once_and_due_again(world, first)
    now = utcnow()
    with session_scope(world.factory) as db:
        listed = [repo.mailboxes_to_read(db, now, now, 10) for _ in (first, second)]
    assert [ids for ids, _due in listed[0]] == [ids for ids, _due in listed[1]] == [mailbox_id]
    with session_scope(world.factory) as db:
        assert repo.take_reads(db, [mailbox_id], now, now + timedelta(minutes=1)) == {mailbox_id}
    with session_scope(world.factory) as db:
        assert repo.take_reads(db, [mailbox_id], now, now + timedelta(minutes=1)) == set()

    # Through the readers themselves, both having listed the inbox before either takes it:
    # one read, by whichever took it.
    read_once_and_due_again(world, first)
    together = threading.Barrier(2)
    listed_alone = repo.mailboxes_to_read

    def listed_together(*args: Any, **kwargs: Any) -> list[tuple[int, datetime | None]]:
        found = listed_alone(*args, **kwargs)
        together.wait(10)
        return found

    monkeypatch.setattr(repo, "mailboxes_to_read", listed_together)
    began = time.monotonic()
    both = [threading.Thread(target=d.inbound.read_due) for d in (first, second)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(30)
    assert len(world.sandbox.inbox_reads(began)) == 1


def test_due_reads_come_never_read_first_then_longest_due_up_to_the_batch(world: World) -> None:
    """Four watched inboxes: one never read, three due at different moments, one not due
    yet. Listed in that order (never read, then longest due) and cut at the batch, however
    the batch falls across the two kinds."""
    senders = [SENDER, *(f"reader{n}@gmail.test" for n in range(4))]
    for sender in senders[1:]:
        link(world.client, sender)
    ids = {}
    for index, sender in enumerate(senders):
        world.campaign(TWO_STEPS, [f"r{index}@example.com"], sender=sender)
        ids[sender] = world.mailbox_id(sender)
    now = utcnow()
    due = {
        senders[0]: None,  # never read
        senders[1]: now - timedelta(seconds=5),
        senders[2]: now - timedelta(seconds=50),
        senders[3]: now - timedelta(seconds=20),
        senders[4]: now + timedelta(seconds=30),  # not due yet
    }
    with session_scope(world.factory) as db:
        for sender, moment in due.items():
            db.execute(
                update(Mailbox).where(Mailbox.id == ids[sender]).values(inbound_read_due_at=moment)
            )
    in_order = [ids[senders[0]], ids[senders[2]], ids[senders[3]], ids[senders[1]]]
    with session_scope(world.factory) as db:
        for limit in (1, 2, 3, 4, 10):
            listed = repo.mailboxes_to_read(db, now, now - timedelta(seconds=60), limit)
            assert [mailbox_id for mailbox_id, _ in listed] == in_order[:limit], limit
        assert dict(repo.mailboxes_to_read(db, now, now, 10))[ids[senders[2]]] == due[senders[2]]


def test_a_read_taken_by_a_worker_that_died_is_read_after_the_read_interval(
    world: World,
) -> None:
    world.campaign(TWO_STEPS, ["ann@example.com"])
    dispatcher = world.dispatcher(inbound_interval=timedelta(seconds=1))
    mailbox_id = read_once_and_due_again(world, dispatcher)
    now = utcnow()
    with session_scope(world.factory) as db:
        assert repo.take_reads(db, [mailbox_id], now, now + timedelta(seconds=1))
    began = time.monotonic()
    dispatcher.inbound.read_due()
    assert world.sandbox.inbox_reads(began) == []
    time.sleep(1.1)
    dispatcher.inbound.read_due()
    assert len(world.sandbox.inbox_reads(began)) == 1


def test_a_read_that_fails_is_no_read_a_follow_up_waits_for(world: World) -> None:
    """Ann answers; the next read of the inbox is refused (a quota), and her follow-up falls
    due. The follow-up waits for a read that happened: the next one finds her answer, and
    she never gets it."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(inbound_interval=INTERVAL)
    dispatcher.run_until_idle()
    assert len(host.received("ann@example.com")) == 1
    host.reply(host.received("ann@example.com")[0])
    world.sandbox.admin("faults", {"mailbox": SENDER, "fault": "quota_exceeded", "count": 1})
    time.sleep(INTERVAL.total_seconds())
    world.due_now(campaign_id, ["ann@example.com"], ago=timedelta(0))
    dispatcher.run_once()
    assert len(world.sandbox.state.mailbox(SENDER).api_faults) == 0  # the read was refused
    assert len(host.received("ann@example.com")) == 1
    time.sleep(INTERVAL.total_seconds() + 0.1)
    dispatcher.run_until_idle()
    assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
    assert len(host.received("ann@example.com")) == 1
