"""A recipient paused, removed or moved gets nothing more, even a step already claimed; resumed,
they get the rest once, at the normal pace."""

from __future__ import annotations

from sqlalchemy import select

from sendwell.campaigns.recipient_actions import Action, act
from sendwell.db import session_scope
from sendwell.mailboxes.tokens import HeldCredential
from sendwell.models import EnrollmentStatus, LedgerStatus, User
from tests.dispatch.conftest import World

TWO_STEPS = [("Hello {{ first_name }}", "Hi {{ first_name }}", 0), ("", "Following up", 0)]


def _addressees(world: World) -> list[str]:
    """Who each message went to, in sending order (addresses without display names)."""
    return [m["to"][0].rpartition("<")[2].rstrip(">") for m in world.sent()]


def _act(world: World, campaign_id: int, action: Action, emails: list[str]) -> None:
    ids = [world.enrollment(campaign_id, email).id for email in emails]
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        act(db, user, campaign_id, action=action, ids=ids)


def test_a_recipient_paused_while_their_step_is_claimed_gets_nothing_until_resumed(
    world: World,
) -> None:
    emails = ["grace@example.com", "alan@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    mailbox_id = world.mailbox_id()
    dispatcher = world.dispatcher()

    claimed = dispatcher.claim(mailbox_id, 2)
    assert len(claimed) == 2
    # The person pauses Grace after the worker claimed her step, before the gate.
    _act(world, campaign_id, Action.PAUSE, ["grace@example.com"])
    credential = HeldCredential(world.factory, world.services, mailbox_id)
    for ready in claimed:
        assert dispatcher.deliver(ready, credential)

    assert _addressees(world) == ["alan@example.com"]
    grace = world.enrollment(campaign_id, "grace@example.com")
    assert grace.status is EnrollmentStatus.PAUSED
    rows = {r.enrollment_id: r for r in world.ledger(campaign_id)}
    assert rows[grace.id].status is LedgerStatus.RETRY

    # Nothing more for her while paused, however many passes run; Alan goes on.
    for _ in range(3):
        dispatcher.run_once()
    sent_to = _addressees(world)
    assert "grace@example.com" not in sent_to
    assert sent_to.count("alan@example.com") == 2

    _act(world, campaign_id, Action.RESUME, ["grace@example.com"])
    for _ in range(4):
        dispatcher.run_once()
    by_step = world.sent_by_step(campaign_id)
    assert set(by_step) == {(e, step) for e in emails for step in (1, 2)}
    assert world.enrollment(campaign_id, "grace@example.com").status is EnrollmentStatus.COMPLETED


def test_removed_and_moved_recipients_get_no_claimed_step(world: World) -> None:
    emails = ["grace@example.com", "alan@example.com", "ada@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    other_id = world.campaign(TWO_STEPS, [], start=False)
    mailbox_id = world.mailbox_id()
    dispatcher = world.dispatcher()

    claimed = dispatcher.claim(mailbox_id, 3)
    assert len(claimed) == 3
    _act(world, campaign_id, Action.REMOVE, ["grace@example.com"])
    ids = [world.enrollment(campaign_id, "alan@example.com").id]
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        act(db, user, campaign_id, action=Action.MOVE, ids=ids, to_campaign_id=other_id)
    credential = HeldCredential(world.factory, world.services, mailbox_id)
    for ready in claimed:
        dispatcher.deliver(ready, credential)
    for _ in range(3):
        dispatcher.run_once()

    assert set(_addressees(world)) == {"ada@example.com"}
    assert world.enrollment(campaign_id, "grace@example.com").status is EnrollmentStatus.REMOVED
    assert world.enrollment(campaign_id, "alan@example.com").status is EnrollmentStatus.MOVED
    assert world.enrollment(other_id, "alan@example.com").status is EnrollmentStatus.NOT_STARTED
