"""A worker's liveness lock: held while it sends, and what it does when the lock is lost.

The takeover from a SIGKILLed worker, across real processes, is in test_workers.py.
"""

from __future__ import annotations

import time
from email.utils import parseaddr

import pytest
from sqlalchemy import select, text

from sendwell.db import session_scope
from sendwell.dispatch.outcomes import NotSent
from sendwell.mailboxes.tokens import HeldCredential
from sendwell.models import DispatchWorker, LedgerStatus, SendLedger
from tests.conftest import Database
from tests.dispatch.conftest import World

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
                    "AND classid = 21335 AND objid = :key AND objsubid = 2"
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
