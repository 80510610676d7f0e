"""Many mailboxes that keep a gap between sends: each pass sends once for every one whose
gap has passed (they are claimed together, `PACED_GROUP` at a time), no mailbox sends
sooner than its gap allows, and no recipient gets a message twice, with one worker or two.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime, timedelta
from email.utils import parseaddr

import pytest

from sendwell.dispatch.engine import PACED_GROUP
from sendwell.kit.clock import utcnow
from tests.conftest import Database
from tests.dispatch.conftest import World
from tests.mailboxes.conftest import link

ONE_STEP = [("Hello {{ first_name }}", "A quick question.", 0)]
GAP_SECONDS = 1
# More mailboxes than one group holds, so that a pass claims more than one group.
MAILBOXES = PACED_GROUP + 5


def paced_mailboxes(world: World, per_mailbox: int) -> dict[str, tuple[int, list[str]]]:
    """MAILBOXES linked Gmail mailboxes with a one-second gap, each with a started campaign
    of its own recipients; returns each sender's campaign and recipients."""
    senders: dict[str, tuple[int, list[str]]] = {}
    for index in range(MAILBOXES):
        sender = f"pacer{index}@gmail.test"
        link(world.client, sender)
        emails = [f"r{index}-{n}@example.com" for n in range(per_mailbox)]
        campaign_id = world.campaign(ONE_STEP, emails, sender=sender, min_gap_seconds=GAP_SECONDS)
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
