"""A worker's liveness lock: held while it sends, and what it does when the lock is lost.

The takeover from a SIGKILLed worker, across real processes, is in test_workers.py.
"""

from __future__ import annotations

import time
from datetime import timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import select, text

from sendwell.db import session_scope
from sendwell.dispatch.liveness import Liveness
from sendwell.dispatch.outcomes import NotSent, Refused, Sent
from sendwell.kit.clock import utcnow
from sendwell.mailboxes.tokens import HeldCredential
from sendwell.models import DispatchWorker, LedgerStatus, SendLedger
from sendwell.providers.base import TAG_HEADER
from sendwell.providers.errors import OutcomeUnknown
from tests.conftest import Database
from tests.dispatch.conftest import World
from tests.mailboxes.conftest import link

EMAILS = [f"person{i}@example.com" for i in range(3)]
ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}.", 0)]


def test_a_worker_whose_lock_was_cut_sends_nothing_until_it_holds_a_new_one(
    world: World, database: Database
) -> None:
    """Its lock's connection is cut (as a network fault or a database restart would): others
    may already be taking its claims over, so it hands nothing more to the host; its next pass
    registers again under a new lock and sends everything, once."""
    if database.backend != "postgresql":
        pytest.skip("the lock is PostgreSQL's advisory lock on a connection of its own")
    world.campaign(ONE_STEP, EMAILS, min_gap_seconds=0, start_delay_minutes=0)
    dispatcher = world.dispatcher()
    mailbox_id = world.mailbox_id()
    with dispatcher.present():
        first_key = dispatcher.liveness.key
        with session_scope(world.factory) as db:
            holder = db.scalar(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = 21335 AND objid = :key AND objsubid = 2 "
                    # Each test process has a database of its own, with keys of its own.
                    "AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": first_key},
            )
            assert holder is not None, "the lock is held while the worker runs"
            db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        deadline = time.monotonic() + 30
        while dispatcher.liveness.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not dispatcher.liveness.held()

        batch = dispatcher.claim(mailbox_id, limit=3)
        assert len(batch) == 3
        credential = HeldCredential(world.factory, world.services, mailbox_id)
        outcome = dispatcher.send(batch[0], credential)
        assert isinstance(outcome, NotSent)
        assert outcome.stop
        for ready in batch:
            dispatcher.outcomes.record(ready.claim, NotSent("the lock was lost"))
        assert world.sent() == []

        dispatcher.run_until_idle()
        assert sorted(parseaddr(str(m["to"][0]))[1] for m in world.sent()) == EMAILS
        with session_scope(world.factory) as db:
            assert set(db.scalars(select(SendLedger.status))) == {LedgerStatus.SENT}
            keys = list(db.scalars(select(DispatchWorker.key)))
        assert keys == [dispatcher.liveness.key]
        assert dispatcher.liveness.key != first_key
    with session_scope(world.factory) as db:
        assert list(db.scalars(select(DispatchWorker))) == [], "unregistered when it stops"


OUTLOOK = "late@contoso.outlook.test"
TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}.", 0),
    ("", "Following up, {{ first_name }}.", 0),
]


def test_a_dead_workers_send_found_in_sent_lets_the_follow_up_go_before_its_lease_ends(
    world: World, database: Database
) -> None:
    """A worker hands a first email to the host and dies before recording it (its lock freed
    by its death, its registration left behind). The send keeps its lease (60 s here), as the
    host may still be finishing it; but it is already in Sent, so the worker that takes over
    records it at once and sends the follow-up, which is all the mailbox has due, without
    waiting for the lease. Nothing goes twice."""
    campaign_id = world.campaign(TWO_STEPS, EMAILS[:1], min_gap_seconds=0, start_delay_minutes=0)
    mailbox_id = world.mailbox_id()
    dead = world.dispatcher()
    if type(dead.liveness) is Liveness:
        pytest.skip("an in-memory database has no liveness lock, and no other process")
    dead.liveness.start()
    [ready] = dead.claim(mailbox_id, limit=1)
    outcome = dead.send(ready, HeldCredential(world.factory, world.services, mailbox_id))
    assert isinstance(outcome, Sent)
    # Stands in for a SIGKILL right after the host answered: the process's death frees its
    # lock (its connection or file closed) but nothing unregisters it or records the send.
    dead.liveness._drop()
    with session_scope(world.factory) as db:
        row = db.get(SendLedger, ready.claim.ledger_id)
        assert row is not None
        assert row.status is LedgerStatus.UNKNOWN
        assert row.lease_until is not None
        assert row.lease_until > utcnow() + timedelta(seconds=30)

    survivor = world.dispatcher()
    with survivor.present():
        survivor.run_until_idle()
    sent = world.sent()
    assert [m["subject"] for m in sent] == ["Hello person0", "Re: Hello person0"]
    assert len({m["headers"][TAG_HEADER] for m in sent}) == 2
    with session_scope(world.factory) as db:
        assert list(db.scalars(select(SendLedger.status))) == [LedgerStatus.SENT] * 2

    # Had it only been cut off, its late word on that send (the answer, or a timeout that
    # left the outcome unknown) changes nothing the survivor settled.
    before = world.ledger(campaign_id)
    dead.outcomes.record(ready.claim, outcome)
    dead.outcomes.record(ready.claim, Refused(OutcomeUnknown("The host did not answer.")))
    after = world.ledger(campaign_id)
    assert [(r.status, r.lease_until, r.error, r.sent_at) for r in after] == [
        (r.status, r.lease_until, r.error, r.sent_at) for r in before
    ]
    assert len(world.sent()) == 2


def test_a_dead_workers_send_whose_copy_comes_late_is_looked_for_again_before_its_lease_ends(
    world: World, database: Database
) -> None:
    """Graph files a sent message's copy a little after answering: at the takeover the dead
    worker's send is not in Sent yet. It is looked for again soon, found, recorded, and the
    follow-up goes long before the send's lease (60 s) would have let it."""
    link(world.client, OUTLOOK)
    world.sandbox.admin(
        "mailbox-settings",
        {"mailbox": OUTLOOK, "sent_copy_delay": 2, "messages_per_minute": 10_000},
    )
    world.campaign(TWO_STEPS, EMAILS[:1], sender=OUTLOOK, min_gap_seconds=0, start_delay_minutes=0)
    mailbox_id = world.mailbox_id(OUTLOOK)
    dead = world.dispatcher()
    if type(dead.liveness) is Liveness:
        pytest.skip("an in-memory database has no liveness lock, and no other process")
    dead.liveness.start()
    [ready] = dead.claim(mailbox_id, limit=1)
    assert isinstance(
        dead.send(ready, HeldCredential(world.factory, world.services, mailbox_id)), Sent
    )
    dead.liveness._drop()  # its death, as in the test above

    survivor = world.dispatcher()
    deadline = time.monotonic() + 30
    with survivor.present():
        while len(world.sent(OUTLOOK)) < 2 and time.monotonic() < deadline:
            survivor.run_once()
            time.sleep(0.1)
    assert [m["subject"] for m in world.sent(OUTLOOK)] == ["Hello person0", "Re: Hello person0"]
    with session_scope(world.factory) as db:
        assert list(db.scalars(select(SendLedger.status))) == [LedgerStatus.SENT] * 2
