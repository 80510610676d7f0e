"""Many mailboxes that keep a gap between sends: each pass sends once for every one whose
gap has passed (they are claimed together, `PACED_GROUP` at a time), no mailbox sends
sooner than its gap allows, and no recipient gets a message twice, with one worker or two.
"""

from __future__ import annotations

import html
import itertools
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import update

from sendwell.db import session_scope
from sendwell.dispatch.engine import PACED_GROUP, STUCK_RETRY
from sendwell.kit.clock import utcnow
from sendwell.models import EnrollmentStatus, Mailbox
from tests.conftest import Database, csrf_from
from tests.dispatch.conftest import World
from tests.dispatch.test_pause import running, wait_until
from tests.mailboxes.conftest import link

ONE_STEP = [("Hello {{ first_name }}", "A quick question.", 0)]
# The follow-up is due as soon as the mailbox's gap allows.
TWO_STEPS = [*ONE_STEP, ("", "Any thoughts?", 0)]
GAP_SECONDS = 1
# More mailboxes than one group holds, so that a pass claims more than one group.
MAILBOXES = PACED_GROUP + 5
# How long a slow host takes to accept a send (seconds).
ANSWER_DELAY = 1.0


def paced_mailboxes(
    world: World, per_mailbox: int, steps: list[tuple[str, str, int]] = ONE_STEP
) -> dict[str, tuple[int, list[str]]]:
    """MAILBOXES linked Gmail mailboxes with a one-second gap, each with a started campaign
    of its own recipients; returns each sender's campaign and recipients."""
    senders: dict[str, tuple[int, list[str]]] = {}
    for index in range(MAILBOXES):
        sender = f"pacer{index}@gmail.test"
        link(world.client, sender)
        emails = [f"r{index}-{n}@example.com" for n in range(per_mailbox)]
        campaign_id = world.campaign(steps, emails, sender=sender, min_gap_seconds=GAP_SECONDS)
        senders[sender] = (campaign_id, emails)
    return senders


def arrivals(world: World, sender: str) -> list[tuple[datetime, str]]:
    return sorted(
        (datetime.fromisoformat(m["sent_at"]), parseaddr(m["to"][0])[1]) for m in world.sent(sender)
    )


def assert_paced_and_once(world: World, senders: dict[str, tuple[int, list[str]]]) -> None:
    for sender, (campaign_id, emails) in senders.items():
        sent = arrivals(world, sender)
        assert Counter(to for _, to in sent) == Counter(emails), sender
        # Each send was claimed no sooner than the gap after the one before.
        claims = sorted(row.claimed_at for row in world.ledger(campaign_id) if row.claimed_at)
        assert len(claims) == len(emails)
        assert all(b - a >= timedelta(seconds=GAP_SECONDS) for a, b in itertools.pairwise(claims))
        # And arrived no sooner than the gap after the one before: the next slot counts from
        # when a send began, whatever its place in its group (allowing for the host's own
        # answer times).
        gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(sent)]
        assert all(gap >= timedelta(seconds=GAP_SECONDS - 0.1) for gap in gaps), (sender, gaps)


def test_one_pass_sends_once_for_every_paced_mailbox(world: World) -> None:
    senders = paced_mailboxes(world, per_mailbox=3)
    dispatcher = world.dispatcher()

    dispatcher.run_once()
    # Every mailbox sent its first message in that pass, and only one (its gap is running).
    assert {sender: len(world.sent(sender)) for sender in senders} == dict.fromkeys(senders, 1)

    deadline = utcnow() + timedelta(seconds=60)
    while utcnow() < deadline and any(len(world.sent(s)) < 3 for s in senders):
        dispatcher.run_once()
        dispatcher.wake.wait(0.05)
    assert_paced_and_once(world, senders)


def test_two_workers_split_the_paced_mailboxes(world: World, database: Database) -> None:
    if database.backend != "postgresql":
        pytest.skip("two workers at once need PostgreSQL's SKIP LOCKED")
    senders = paced_mailboxes(world, per_mailbox=3)
    workers = [world.dispatcher(), world.dispatcher()]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run_forever, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    try:
        deadline = utcnow() + timedelta(seconds=60)
        while utcnow() < deadline and any(len(world.sent(s)) < 3 for s in senders):
            stop.wait(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.wake.set()
        for thread in threads:
            thread.join(timeout=30)
    assert_paced_and_once(world, senders)
    # Both took part: the due list was split between them, not served twice over.
    by_worker = Counter(
        row.worker for campaign_id, _ in senders.values() for row in world.ledger(campaign_id)
    )
    assert len(by_worker) == 2, by_worker


def test_slow_hosts_get_several_sends_at_once(world: World) -> None:
    """Hosts across the internet take a while to accept a send: one worker hands several
    mailboxes' sends over together instead of waiting for each answer in turn, and still
    never two of one mailbox."""
    senders = paced_mailboxes(world, per_mailbox=2)
    for sender in senders:
        world.sandbox.admin("mailbox-settings", {"mailbox": sender, "answer_delay": ANSWER_DELAY})
    dispatcher = world.dispatcher()

    dispatcher.run_once()
    firsts = sorted(arrivals(world, sender)[0][0] for sender in senders)
    assert len(firsts) == MAILBOXES
    # One at a time, the last of the pass would have arrived (MAILBOXES - 1) answers after
    # the first; together, within a few answers (the worker's own claims and records between).
    waits = (firsts[-1] - firsts[0]).total_seconds() / ANSWER_DELAY
    assert waits < MAILBOXES / 3, waits

    deadline = utcnow() + timedelta(seconds=60)
    while utcnow() < deadline and any(len(world.sent(s)) < 2 for s in senders):
        dispatcher.run_once()
        dispatcher.wake.wait(0.05)
    assert_paced_and_once(world, senders)


def test_a_bounce_right_after_a_new_mailboxs_first_send_is_seen(world: World) -> None:
    """Every host lists only what arrives after a mailbox's first inbox read, so new
    mailboxes read their inboxes before their first sends (several at a time): a bounce that
    comes back at once still stops the follow-up, for every one of a crowd of new mailboxes."""
    senders = paced_mailboxes(world, per_mailbox=1, steps=TWO_STEPS)
    dispatcher = world.dispatcher(inbound_interval=timedelta(minutes=1))

    dispatcher.run_once()
    for sender in senders:
        (first,) = world.sent(sender)
        world.sandbox.admin(
            "bounce", {"mailbox": sender, "to_message_id": first["headers"]["Message-ID"]}
        )
    deadline = utcnow() + timedelta(seconds=30)
    while utcnow() < deadline and any(
        world.enrollment(campaign_id, emails[0]).status is not EnrollmentStatus.BOUNCED
        for campaign_id, emails in senders.values()
    ):
        dispatcher.run_once()
        dispatcher.wake.wait(0.1)

    assert {
        sender: world.enrollment(campaign_id, emails[0]).status
        for sender, (campaign_id, emails) in senders.items()
    } == dict.fromkeys(senders, EnrollmentStatus.BOUNCED)
    assert {sender: len(world.sent(sender)) for sender in senders} == dict.fromkeys(senders, 1)


def test_a_pause_holds_while_several_sends_are_in_flight(world: World) -> None:
    """Sends of several mailboxes in flight together: once a campaign's page says paused,
    nothing more of it arrives, whatever the worker had gated or handed over."""
    # Enough recipients that no campaign completes (a second apart) before its pause.
    senders = paced_mailboxes(world, per_mailbox=10)
    for sender in senders:
        world.sandbox.admin("mailbox-settings", {"mailbox": sender, "answer_delay": 0.3})
    with running(world.dispatcher(inbound_interval=timedelta(minutes=5))):
        assert wait_until(lambda: sum(len(world.sent(s)) for s in senders) >= 3, 30)
        at_pause: dict[str, int] = {}
        for sender, (campaign_id, _emails) in senders.items():
            page = f"/campaigns/{campaign_id}"
            token = csrf_from(world.client.get(page).text)
            paused = world.client.post(f"{page}/pause", data={"csrftoken": token})
            assert "is paused" in html.unescape(paused.text)
            at_pause[sender] = len(world.sent(sender))
        assert sum(at_pause.values()) < 10 * MAILBOXES, "all went out before the pauses"
        time.sleep(1.5)
        assert {s: len(world.sent(s)) for s in senders} == at_pause


def test_a_slot_that_comes_after_the_walk_is_served_at_once_and_a_stuck_one_later(
    world: World,
) -> None:
    """With thousands of paced mailboxes, one's slot comes in almost any few milliseconds: a
    pass that sent nothing and finds, when it works out its next wake, a slot come since its
    walk looked goes again at once (the walk could not see it). A slot the walk saw come and
    could not serve (something holds it) is looked at again a little later, not in a loop."""
    campaign_id = world.campaign(
        [("Hello {{ first_name }}", "A quick question.", 0)],
        ["ann@example.com", "bob@example.com"],
        min_gap_seconds=60,
    )
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert len(world.sent_by_step(campaign_id)) == 1  # the other waits for the mailbox's gap
    world.due_now(campaign_id, ago=timedelta(seconds=5))
    came = utcnow() - timedelta(seconds=0.3)  # the mailbox's slot, after the step fell due
    with session_scope(world.factory) as db:
        db.execute(update(Mailbox).values(send_not_before=came))

    at_once = dispatcher._next_wake(walked_at=came - timedelta(seconds=1))
    assert at_once <= utcnow()
    before = utcnow()
    stuck = dispatcher._next_wake(walked_at=came + timedelta(seconds=0.1))
    assert stuck >= before + STUCK_RETRY
