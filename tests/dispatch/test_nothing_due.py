"""A mailbox whose recipients are all waiting (a follow-up days away, a window that opens
tomorrow) is left out of the sending walk until the first of them may be due, so thousands of
quiet mailboxes cost a pass nothing. Whatever brings a recipient due sooner brings the mailbox
back at once, however it was written, and a change made while a claim was looking is never
lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.campaigns import recipients, service
from sendwell.db import session_scope
from sendwell.dispatch import engine
from sendwell.dispatch import repository as repo
from sendwell.dispatch.resuming import resume
from sendwell.kit.clock import utcnow
from sendwell.models import Campaign, DueMark, Enrollment, Mailbox, User
from tests.dispatch.conftest import SENDER, World
from tests.dispatch.hosts import SandboxHost
from tests.dispatch.test_schedule import set_window

# After the first email, the follow-up is a day away.
TWO_STEPS = [
    ("Hello {{ first_name }}", "A quick question.", 0),
    ("", "Any news?", 1440),
]


def walked(world: World) -> bool:
    with session_scope(world.factory) as db:
        return world.mailbox_id() in {m.id for m in repo.sending_mailboxes(db, "w", utcnow())}


def left_out_until(world: World) -> datetime | None:
    with session_scope(world.factory) as db:
        mark = db.get(DueMark, world.mailbox_id())
        assert mark is not None
        return mark.nothing_due_before


def mark_by_hand(world: World, until: datetime | None) -> None:
    with session_scope(world.factory) as db:
        db.execute(update(DueMark).values(nothing_due_before=until))


def add(world: World, campaign_id: int, email: str) -> None:
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        recipients.add_recipients(
            db, user, campaign_id, [recipients.RecipientIn(email, first_name="Cy")]
        )


def sent_once_and_quiet(world: World, campaign_id: int) -> engine.Dispatcher:
    """Ann has her first email; the dispatcher has since found nothing due."""
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}
    dispatcher.run_once()
    return dispatcher


def test_a_mailbox_with_nothing_due_is_left_out_until_its_follow_up(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    sent_once_and_quiet(world, campaign_id)
    follow_up = world.enrollment(campaign_id, "ann@example.com").next_due_at
    assert follow_up is not None
    # A day away is past the horizon: looked at again within the hour, not every pass.
    until = left_out_until(world)
    assert until is not None
    assert utcnow() + timedelta(minutes=55) < until <= utcnow() + engine.NOTHING_DUE_HORIZON
    assert not walked(world)


def start(world: World, campaign_id: int) -> None:
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        service.start(db, user, campaign_id)


def left_out_for_the_horizon(world: World) -> bool:
    until = left_out_until(world)
    return (
        until is not None
        and utcnow() + timedelta(minutes=55) < until <= utcnow() + engine.NOTHING_DUE_HORIZON
    )


def test_a_mailbox_with_no_campaign_running_is_left_out_until_one_starts(world: World) -> None:
    # Linked, its campaign still a draft: no claim ever looks at such a mailbox.
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"], start=False)
    dispatcher = world.dispatcher()
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    assert left_out_for_the_horizon(world)
    # Started, the campaign sends at the next pass, not when the mark runs out.
    start(world, campaign_id)
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}


def test_a_mailbox_whose_campaigns_all_ended_is_left_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "UNUSED_LOOK", timedelta(0))
    campaign_id = world.campaign(
        [("Hello {{ first_name }}", "A quick question.", 0)], ["ann@example.com"]
    )
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}
    dispatcher.run_once()
    assert left_out_for_the_horizon(world)
    # A new campaign of the mailbox, started, brings it back.
    second = world.campaign(TWO_STEPS, ["bob@example.com"])
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(second)) == {("bob@example.com", 1)}


def test_a_campaign_started_between_the_look_and_the_mark_is_not_left_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for mailboxes with no campaign running and their marks are two transactions:
    a campaign started in between (committed before the marks are worked out) is seen."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"], start=False)
    looked = repo.unmarked_without_campaign

    def look_then_start(db: Session, now: datetime, limit: int) -> list[int]:
        found = looked(db, now, limit)
        start(world, campaign_id)
        return found

    monkeypatch.setattr(repo, "unmarked_without_campaign", look_then_start)
    world.dispatcher().run_once()
    # The same pass walked the mailbox and sent the first email.
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1)}


def test_a_window_that_opens_later_leaves_the_mailbox_out_until_it_opens(world: World) -> None:
    opens = (utcnow() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    if opens.date() != utcnow().date() or opens.hour == 23:
        pytest.skip("too close to midnight (UTC) for a window later today")
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"], start=False)
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(schedule_start=f"{opens:%H:%M}", schedule_end="23:59", timezone="UTC")
        )
    start(world, campaign_id)
    world.dispatcher().run_until_idle()
    assert world.sent() == []
    assert left_out_until(world) == opens
    assert not walked(world)


def change_due(world: World, campaign_id: int) -> None:
    world.due_now(campaign_id, ["ann@example.com"])


def add_recipient(world: World, campaign_id: int) -> None:
    add(world, campaign_id, "cy@example.com")


def pause_and_resume(world: World, campaign_id: int) -> None:
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        service.pause(db, user, campaign_id)
    world.due_now(campaign_id, ["ann@example.com"])
    # A paused campaign sends nothing whatever its mailbox's mark...
    mark_by_hand(world, utcnow() + timedelta(hours=1))
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        resume(db, user, campaign_id)  # ...resuming it does.


@pytest.mark.parametrize(
    ("change", "arrivals"),
    [
        (change_due, {("ann@example.com", 1), ("ann@example.com", 2)}),
        (add_recipient, {("ann@example.com", 1), ("cy@example.com", 1)}),
        (pause_and_resume, {("ann@example.com", 1), ("ann@example.com", 2)}),
    ],
    ids=["due-sooner", "recipient-added", "paused-and-resumed"],
)
def test_whatever_brings_a_recipient_due_sooner_brings_the_mailbox_back(
    world: World,
    change: Callable[[World, int], None],
    arrivals: set[tuple[str, int]],
) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    dispatcher = sent_once_and_quiet(world, campaign_id)
    assert left_out_until(world) is not None
    change(world, campaign_id)
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == arrivals


def test_an_edited_window_brings_the_mailbox_back(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    world.postpone(campaign_id, ["bob@example.com"], timedelta(minutes=10))
    sent_once_and_quiet(world, campaign_id)
    assert left_out_until(world) is not None
    set_window(world, campaign_id, "", None, None)
    assert left_out_until(world) is None


def leave_out(world: World) -> None:
    """What a claim does once it found nothing of the mailbox due, in a transaction of its
    own."""
    with session_scope(world.factory) as db:
        engine.Dispatcher._leave_out(db, [world.mailbox_id()], utcnow())


def add_cy(world: World, db: Session, campaign_id: int) -> None:
    user = db.scalars(select(User)).first()
    assert user is not None
    recipients.add_recipients(
        db, user, campaign_id, [recipients.RecipientIn("cy@example.com", first_name="Cy")]
    )


def resume_other(world: World, db: Session, campaign_id: int) -> None:
    """Another campaign of the mailbox, paused with a recipient due, is resumed."""
    user = db.scalars(select(User)).first()
    assert user is not None
    resume(db, user, campaign_id)


@pytest.mark.parametrize("change", [add_cy, resume_other], ids=["recipient-added", "resumed"])
def test_a_change_made_while_a_claim_looks_is_never_lost(
    world: World, change: Callable[[World, Session, int], None]
) -> None:
    """Both orders of a claim that leaves the mailbox out and a change made meanwhile
    (neither committed when the other writes): the mailbox ends up in the walk, and on
    PostgreSQL the claim never waits for the change (an import may take minutes)."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    other = world.campaign(TWO_STEPS, ["bob@example.com"], start=False)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        service.start(db, user, other)
    world.due_now(other)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        service.pause(db, user, other)
    dispatcher = sent_once_and_quiet(world, campaign_id)
    target = campaign_id if change is add_cy else other
    postgresql = world.settings.database_url.startswith("postgresql")

    # The change comes first and is not committed: the claim writes no mark. On PostgreSQL it
    # does not wait for the change; on SQLite every writer waits for the one before, and the
    # claim then sees the change.
    mark_by_hand(world, None)
    claim = threading.Thread(target=leave_out, args=(world,))
    with session_scope(world.factory) as db:
        change(world, db, target)
        db.flush()
        claim.start()
        if postgresql:
            claim.join(10)
            assert not claim.is_alive()
        else:
            time.sleep(0.5)
            assert claim.is_alive()
    claim.join(10)
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    sent = set(world.sent_by_step(campaign_id)) | set(world.sent_by_step(other))
    assert {("cy@example.com", 1) if change is add_cy else ("bob@example.com", 1)} < sent

    # The claim writes its mark first and has not committed: the change waits for it, then
    # clears the mark.
    mark_by_hand(world, None)
    added = threading.Event()

    def add_dee() -> None:
        add(world, campaign_id, "dee@example.com")
        added.set()

    with session_scope(world.factory) as db:
        engine.Dispatcher._leave_out(db, [world.mailbox_id()], utcnow())
        mark = db.get(DueMark, world.mailbox_id())
        assert mark is not None
        assert mark.nothing_due_before is not None
        thread = threading.Thread(target=add_dee)
        thread.start()
        assert not added.wait(0.5)
    thread.join(10)
    assert added.is_set()
    assert left_out_until(world) is None
    dispatcher.run_until_idle()
    assert ("dee@example.com", 1) in world.sent_by_step(campaign_id)


def test_a_host_that_paces_sends_still_leaves_quiet_mailboxes_out(world: World) -> None:
    """Paced mailboxes are claimed in groups; a group's quiet ones are left out too."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"], min_gap_seconds=1)
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert len(host.received("ann@example.com")) == 1
    # The gap has passed: the mailbox is walked, claimed in a group, and found quiet.
    with session_scope(world.factory) as db:
        db.execute(update(Mailbox).values(send_not_before=None))
    assert walked(world)
    dispatcher.run_once()
    assert world.enrollment(campaign_id, "ann@example.com").steps_sent == 1
    assert left_out_until(world) is not None
    assert not walked(world)


def test_what_cannot_bring_a_recipient_due_sooner_leaves_the_mark(world: World) -> None:
    """A counter on the campaign, a recipient moved later, or given a due moment two hours
    or more ahead (past any mark): the mailbox stays out of the walk."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    sent_once_and_quiet(world, campaign_id)
    mark = left_out_until(world)
    assert mark is not None
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(consecutive_failures=3)
        )
    world.postpone(campaign_id, ["ann@example.com"], timedelta(days=2))
    due_in(world, None)
    due_in(world, timedelta(hours=3))
    assert left_out_until(world) == mark
    # Due within the two hours, it does bring the mailbox back.
    due_in(world, timedelta(minutes=90))
    assert left_out_until(world) is None


def due_in(world: World, wait: timedelta | None) -> None:
    with session_scope(world.factory) as db:
        db.execute(update(Enrollment).values(next_due_at=None if wait is None else utcnow() + wait))


def test_the_horizon_stays_inside_the_triggers_two_hours() -> None:
    """Migration 0023's triggers pass over a recipient due two hours or more ahead: a mark
    must never be further ahead than that, less the longest transaction."""
    assert timedelta(0) < engine.NOTHING_DUE_HORIZON <= timedelta(hours=1)
