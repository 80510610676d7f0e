"""Send faults queued in the sandbox, over real HTTP: what a recipient and a user would notice.

A dropped answer or a timeout never turns into a second copy; passing errors are retried with
growing waits and finally sent once; a recipient that keeps failing is given up on while the
campaign goes on; the host's rate-limit time is honoured; a run of failures pauses the campaign.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from sendwell.db import session_scope
from sendwell.dispatch import pacing
from sendwell.kit.clock import utcnow
from sendwell.models import (
    Campaign,
    CampaignStatus,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    PauseReason,
    SendLedger,
)
from tests.dispatch.conftest import SENDER, World

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]
TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 0),
]
# Slack for the time between the dispatcher's clock reading and the test's.
SLACK = timedelta(seconds=2)


def queue(world: World, fault: str, count: int = 1) -> None:
    world.sandbox.admin("faults", {"mailbox": SENDER, "fault": fault, "count": count})


def faults_left(world: World) -> int:
    return len(world.sandbox.state.mailbox(SENDER).send_faults)


def campaign_row(world: World, campaign_id: int) -> Campaign:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        db.expunge(campaign)
        return campaign


def test_a_dropped_answer_is_found_in_sent_and_never_sent_twice(world: World) -> None:
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    queue(world, "drop_after_accept", 2)

    world.dispatcher().run_until_idle()

    assert faults_left(world) == 0
    by_step = world.sent_by_step(campaign_id)
    assert set(by_step) == {(email, step) for email in emails for step in (1, 2)}
    assert len(world.sent()) == 6
    for email in emails:
        first, second = by_step[(email, 1)], by_step[(email, 2)]
        # The follow-up answers the real Message-ID, even when step 1's answer was lost.
        assert second["headers"]["In-Reply-To"] == first["headers"]["Message-ID"]
        assert second["thread_id"] == first["thread_id"]
    # Settled through Sent, never handed to the host a second time.
    assert [row.attempts for row in world.ledger(campaign_id)] == [1] * 6
    assert campaign_row(world, campaign_id).status is CampaignStatus.COMPLETED


def test_a_timed_out_send_settles_as_not_sent_and_goes_out_once_later(world: World) -> None:
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    world.sandbox.admin("timeout", {"seconds": 2})
    queue(world, "timeout")
    with httpx.Client(timeout=0.5) as quick:
        dispatcher = world.app_dispatcher(
            world.services_over(quick), settle_grace=timedelta(seconds=60)
        )
        dispatcher.run_once()

        assert world.sent() == []
        (row,) = world.ledger(campaign_id)
        assert row.status is LedgerStatus.UNKNOWN
        assert "no answer came back" in row.error
        # While its outcome is unknown the step is never tried again.
        dispatcher.run_until_idle()
        (row,) = world.ledger(campaign_id)
        assert row.status is LedgerStatus.UNKNOWN
        assert row.attempts == 1
        assert world.enrollment(campaign_id, "ann@example.com").next_due_at is None

        # The grace passes: it is looked for in Sent, not found, and goes back in line
        # after a backoff like any failed attempt.
        with session_scope(world.factory) as db:
            db.execute(update(SendLedger).values(lease_until=utcnow() - timedelta(seconds=1)))
        dispatcher.outcomes.settle_unknown()
        (row,) = world.ledger(campaign_id)
        assert row.status is LedgerStatus.RETRY
        enrollment = world.enrollment(campaign_id, "ann@example.com")
        assert enrollment.status is EnrollmentStatus.NOT_STARTED
        assert enrollment.next_due_at is not None
        assert enrollment.next_due_at > utcnow()
        assert world.sent() == []

        world.due_now(campaign_id)
        dispatcher.run_until_idle()

    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}
    assert len(world.sent()) == 1
    (row,) = world.ledger(campaign_id)
    assert row.attempts == 2
    assert campaign_row(world, campaign_id).status is CampaignStatus.COMPLETED


def test_server_errors_are_retried_with_growing_waits_then_sent_once(world: World) -> None:
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    queue(world, "server_error", 2)
    dispatcher = world.dispatcher()

    for attempt, (low, high) in enumerate([(15, 30), (30, 60)], start=1):
        dispatcher.run_once()
        now = utcnow()
        enrollment = world.enrollment(campaign_id, "ann@example.com")
        assert enrollment.status is EnrollmentStatus.NOT_STARTED
        assert enrollment.next_due_at is not None
        wait = enrollment.next_due_at - now
        assert timedelta(seconds=low) - SLACK <= wait <= timedelta(seconds=high), wait
        (row,) = world.ledger(campaign_id)
        assert (row.status, row.attempts) == (LedgerStatus.RETRY, attempt)
        assert "Backend Error" in row.error
        assert campaign_row(world, campaign_id).consecutive_failures == attempt
        # Nothing goes out before the backoff has passed.
        dispatcher.run_until_idle()
        assert world.sent() == []
        world.due_now(campaign_id)

    dispatcher.run_until_idle()

    assert faults_left(world) == 0
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}
    assert len(world.sent()) == 1
    (row,) = world.ledger(campaign_id)
    assert (row.status, row.attempts, row.error) == (LedgerStatus.SENT, 3, "")
    campaign = campaign_row(world, campaign_id)
    assert campaign.status is CampaignStatus.COMPLETED
    assert campaign.consecutive_failures == 0


def test_a_recipient_is_failed_after_max_attempts_and_the_campaign_goes_on(
    world: World,
) -> None:
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    campaign_id = world.campaign(ONE_STEP, emails)
    # Only Ann is due while the faults last, so every one of them lands on her.
    world.postpone(campaign_id, emails[1:], timedelta(hours=1))
    queue(world, "server_error", 3)
    dispatcher = world.dispatcher(max_attempts=3)

    for _attempt in range(3):
        world.due_now(campaign_id, ["ann@example.com"])
        dispatcher.run_until_idle()
        assert world.sent() == []
    assert faults_left(world) == 0

    ann = world.enrollment(campaign_id, "ann@example.com")
    assert ann.status is EnrollmentStatus.FAILED
    assert ann.status_reason.startswith("Gave up after 3 attempts: ")
    assert "Backend Error" in ann.status_reason
    assert ann.next_due_at is None

    world.due_now(campaign_id)
    dispatcher.run_until_idle()

    by_step = world.sent_by_step(campaign_id)
    assert set(by_step) == {("bob@example.com", 1), ("cy@example.com", 1)}
    assert len(world.sent()) == 2
    statuses = {e: world.enrollment(campaign_id, e).status for e in emails}
    assert statuses == {
        "ann@example.com": EnrollmentStatus.FAILED,
        "bob@example.com": EnrollmentStatus.COMPLETED,
        "cy@example.com": EnrollmentStatus.COMPLETED,
    }
    ann_row = next(r for r in world.ledger(campaign_id) if r.status is LedgerStatus.FAILED)
    assert ann_row.attempts == 3
    assert campaign_row(world, campaign_id).status is CampaignStatus.COMPLETED


def test_a_rate_limit_holds_the_mailbox_until_the_hosts_retry_time(world: World) -> None:
    emails = ["ann@example.com", "bob@example.com"]
    campaign_id = world.campaign(ONE_STEP, emails)
    mailbox_id = world.mailbox_id()
    queue(world, "rate_limit")
    dispatcher = world.dispatcher()

    dispatcher.run_once()

    # Gmail says "Retry after <time 30 s ahead>" in the message, not in a header.
    with session_scope(world.factory) as db:
        mailbox = db.get(Mailbox, mailbox_id)
        assert mailbox is not None
        held_until = mailbox.send_not_before
    assert held_until is not None
    ahead = held_until - utcnow()
    assert timedelta(seconds=27) <= ahead <= timedelta(seconds=31), ahead
    # Both steps keep their place (the second was claimed in the same batch and never went);
    # a rate limit is not a failed attempt.
    rows = world.ledger(campaign_id)
    assert [(row.status, row.attempts) for row in rows] == [(LedgerStatus.RETRY, 0)] * 2

    dispatcher.run_until_idle()
    assert world.sent() == []
    assert dispatcher.run_once() == held_until

    with session_scope(world.factory) as db:
        db.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(send_not_before=utcnow() - timedelta(seconds=1))
        )
    dispatcher.run_until_idle()

    by_step = world.sent_by_step(campaign_id)
    assert set(by_step) == {(email, 1) for email in emails}
    assert len(world.sent()) == 2
    assert [row.attempts for row in world.ledger(campaign_id)] == [1, 1]
    assert campaign_row(world, campaign_id).consecutive_failures == 0


def test_ten_failures_in_a_row_pause_the_campaign(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pacing, "RETRY_BASE", timedelta(0))
    emails = [f"person{i}@example.com" for i in range(5)]
    campaign_id = world.campaign(ONE_STEP, emails)
    queue(world, "server_error", 11)
    dispatcher = world.dispatcher()

    dispatcher.run_until_idle()

    campaign = campaign_row(world, campaign_id)
    assert campaign.status is CampaignStatus.PAUSED
    assert campaign.pause_reason is PauseReason.SEND_ERRORS
    # Exactly ten attempts; the eleventh fault was never reached.
    assert faults_left(world) == 1
    assert world.sent() == []
    assert {world.enrollment(campaign_id, e).status for e in emails} == {
        EnrollmentStatus.NOT_STARTED
    }
    page = world.client.get(f"/campaigns/{campaign_id}")
    assert "Paused after repeated sending errors." in page.text

    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    assert faults_left(world) == 1
    assert world.sent() == []


def test_a_smaller_failure_budget_pauses_sooner(world: World) -> None:
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com", "bob@example.com"])
    queue(world, "server_error", 5)
    dispatcher = world.dispatcher(failures_before_pause=3)

    for _attempt in range(3):
        world.due_now(campaign_id)
        dispatcher.run_until_idle()

    campaign = campaign_row(world, campaign_id)
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.SEND_ERRORS,
    )
    assert faults_left(world) == 2
    assert world.sent() == []
