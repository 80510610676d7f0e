"""The sending engine through the sandbox over real HTTP: exactly once, threaded, paced."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection, event, select, update
from sqlalchemy.exc import OperationalError

from sendwell.db import session_scope
from sendwell.dispatch.engine import SEND_BATCH
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
)
from tests.dispatch.conftest import World

THREE_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 0),
    ("Re: Hello {{ first_name }}", "Last note.", 0),
]


def test_three_steps_to_fifty_recipients_exactly_once_and_threaded(world: World) -> None:
    emails = [f"person{i}@example.com" for i in range(50)]
    campaign_id = world.campaign(THREE_STEPS, emails)
    world.dispatcher().run_until_idle()
    sent = world.sent()
    assert len(sent) == 150
    per_recipient: dict[str, list[dict[str, Any]]] = {}
    for message in sent:
        per_recipient.setdefault(str(message["to"][0]).split("<")[-1].rstrip(">"), []).append(
            message
        )
    assert set(per_recipient) == set(emails)
    for messages in per_recipient.values():
        assert len(messages) == 3
        first, second, third = messages
        assert first["thread_id"] == second["thread_id"] == third["thread_id"]
        assert second["headers"]["In-Reply-To"] == first["headers"]["Message-ID"]
        assert third["headers"]["In-Reply-To"] == second["headers"]["Message-ID"]
        assert len({m["headers"]["X-Sendwell-Send-Id"] for m in messages}) == 3
        assert "List-Unsubscribe" in first["headers"]
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.COMPLETED
        statuses = set(db.scalars(select(Enrollment.status)))
    assert statuses == {EnrollmentStatus.COMPLETED}


def test_min_gap_paces_the_mailbox(world: World) -> None:
    world.campaign(
        [("Hi", "Hello", 0)], ["a@example.com", "b@example.com", "c@example.com"], min_gap_seconds=1
    )
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert len(world.sent()) == 1
    deadline = time.monotonic() + 15
    while len(world.sent()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        dispatcher.run_once()
    times = sorted(datetime.fromisoformat(str(m["sent_at"])) for m in world.sent())
    assert len(times) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.0 for gap in gaps), gaps


def test_claims_of_workers_that_died_are_not_counted_as_attempts(world: World) -> None:
    """A worker that dies after claiming a step, before handing it to the host, has not tried
    to send it: however often that happens, the recipient is not given up, nor kept waiting
    longer between tries; the message goes once when a worker lives."""
    campaign_id = world.campaign([("Hello {{ first_name }}", "A quick question.", 0)], ["ann@x.io"])
    mailbox_id = world.mailbox_id()
    for _death in range(7):  # more than max_attempts (5)
        dying = world.dispatcher(lease=timedelta(seconds=-1))
        assert len(dying.claim(mailbox_id)) == 1
        with session_scope(world.factory) as db:
            db.execute(update(Mailbox).values(send_not_before=None, sender_until=None))
        world.dispatcher().outcomes.release_expired_claims(set())
    (row,) = world.ledger(campaign_id)
    assert row.status is LedgerStatus.RETRY
    assert row.attempts == 0
    world.dispatcher().run_until_idle()
    assert [parseaddr(m["to"][0])[1] for m in world.sent()] == ["ann@x.io"]
    assert world.enrollment(campaign_id, "ann@x.io").status is EnrollmentStatus.COMPLETED


def test_each_send_is_recorded_in_the_next_gates_commit_and_a_failed_one_loses_nothing(
    world: World,
) -> None:
    """A mailbox with no gap sends one message after another: each send's record shares a
    commit with the next claim's gate, so a message costs one commit, not two. When that
    commit fails, the send is recorded on its own and the next claim still goes: every
    recipient gets exactly one email and the ledger agrees."""
    emails = [f"batch{i}@example.com" for i in range(SEND_BATCH)]
    campaign_id = world.campaign([("Hello {{ first_name }}", "Hi {{ first_name }}.", 0)], emails)
    engine = world.factory.kw["bind"]
    commits = 0
    gates = 0

    def count_commit(_connection: object) -> None:
        nonlocal commits
        commits += 1

    def fail_one_combined_commit(
        connection: Connection, _cursor: object, statement: str, *_args: object
    ) -> None:
        nonlocal gates
        if statement.startswith("UPDATE send_ledger SET status") and "EXISTS" in statement:
            gates += 1
            if gates == 10:
                raise OperationalError(statement, None, Exception("the connection was cut"))

    event.listen(engine, "commit", count_commit)
    event.listen(engine, "before_cursor_execute", fail_one_combined_commit)
    try:
        world.dispatcher().run_until_idle()
    finally:
        event.remove(engine, "commit", count_commit)
        event.remove(engine, "before_cursor_execute", fail_one_combined_commit)
    arrived = sorted(parseaddr(str(m["to"][0]))[1] for m in world.sent())
    assert arrived == sorted(emails)
    assert {row.status for row in world.ledger(campaign_id)} == {LedgerStatus.SENT}
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.COMPLETED
    assert gates == SEND_BATCH + 1, "the failed gate was tried again on its own"
    # One commit per message, plus the claim's, the last record's and the passes' own (75
    # here); with each gate and record committed apart it was 125.
    assert commits < 2 * SEND_BATCH, commits
