"""Actions on recipients, one or many: pause, resume, remove, mark as replied, move."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import recipient_repository, service
from sendwell.campaigns.recipient_actions import Action, act
from sendwell.campaigns.recipient_repository import RecipientFilter
from sendwell.campaigns.recipients import RecipientIn
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    Role,
    User,
    WebhookEndpoint,
    WebhookEvent,
)
from sendwell.webhooks.service import ENDPOINTS_KEY
from tests.campaigns.test_service import add, events, make_campaign, make_mailbox, make_user

PEOPLE = (
    RecipientIn("grace@example.com", first_name="Grace", last_name="Hopper"),
    RecipientIn("alan@turing.org", first_name="Alan", last_name="Turing"),
    RecipientIn("ada@example.com", first_name="Ada", last_name="Lovelace"),
)


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


@pytest.fixture
def campaign(db: Session, user: User) -> Campaign:
    campaign = make_campaign(db, user, make_mailbox(db, user))
    add(db, user, campaign, *PEOPLE)
    service.start(db, user, campaign.id)
    return campaign


def people(db: Session, campaign: Campaign) -> dict[str, Enrollment]:
    db.expire_all()
    rows = db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign.id))
    return {row.email: row for row in rows}


def test_pause_and_resume_one_and_many(db: Session, user: User, campaign: Campaign) -> None:
    before = people(db, campaign)
    grace, alan = before["grace@example.com"], before["alan@turing.org"]
    due = grace.next_due_at
    assert due is not None

    report = act(db, user, campaign.id, action=Action.PAUSE, ids=[grace.id, alan.id])
    assert report.sentence() == "Paused 2 recipients."
    after = people(db, campaign)
    assert after["grace@example.com"].status is EnrollmentStatus.PAUSED
    assert after["alan@turing.org"].status is EnrollmentStatus.PAUSED
    assert after["ada@example.com"].status is EnrollmentStatus.NOT_STARTED
    assert "Paused by" in after["grace@example.com"].status_reason
    line = events(db, campaign.id)[-1]
    assert (line.kind, line.actor_id) == ("recipients_paused", user.id)
    assert "grace@example.com" in line.reason
    assert "alan@turing.org" in line.reason

    # Pausing again names who cannot be paused; nothing changes.
    with pytest.raises(Conflict, match=r"grace@example\.com is paused"):
        act(db, user, campaign.id, action=Action.PAUSE, ids=[grace.id])

    report = act(db, user, campaign.id, action=Action.RESUME, ids=[grace.id])
    resumed = people(db, campaign)["grace@example.com"]
    assert resumed.status is EnrollmentStatus.NOT_STARTED
    # The start delay still holds: resuming does not make the first email due earlier.
    assert resumed.next_due_at == due
    assert resumed.status_reason == ""


def test_a_resumed_follow_up_waits_its_delay_after_the_step_before(
    db: Session, user: User, campaign: Campaign
) -> None:
    grace = people(db, campaign)["grace@example.com"]
    # Step 1 went an hour ago; step 2 waits three days after it. The claim had cleared the due
    # time when the pause landed.
    grace.status, grace.steps_sent = EnrollmentStatus.IN_PROGRESS, 1
    grace.last_sent_at, grace.next_due_at = utcnow() - timedelta(hours=1), None
    db.flush()
    act(db, user, campaign.id, action=Action.PAUSE, ids=[grace.id])
    act(db, user, campaign.id, action=Action.RESUME, ids=[grace.id])
    resumed = people(db, campaign)["grace@example.com"]
    assert resumed.status is EnrollmentStatus.IN_PROGRESS
    assert resumed.next_due_at is not None
    assert resumed.last_sent_at is not None
    assert resumed.next_due_at == resumed.last_sent_at + timedelta(days=3)


def test_remove_and_mark_replied_finish_recipients_and_complete_the_campaign(
    db: Session, user: User, campaign: Campaign
) -> None:
    db.add(
        WebhookEndpoint(
            workspace_id=user.workspace_id,
            url="https://hooks.example.com/sendwell",
            secret="x",
            events="recipient.replied",
        )
    )
    db.flush()
    db.info.pop(ENDPOINTS_KEY)  # read once per transaction: this test's is the whole test
    everyone = people(db, campaign)
    ids = [e.id for e in everyone.values()]
    report = act(
        db, user, campaign.id, action=Action.MARK_REPLIED, ids=[everyone["ada@example.com"].id]
    )
    assert report.sentence() == "Marked as replied 1 recipient."
    replied = db.scalars(select(WebhookEvent).where(WebhookEvent.type == "recipient.replied")).all()
    assert len(replied) == 1

    # Bulk: Ada has replied already, so only the other two are removed, and she is named.
    report = act(db, user, campaign.id, action=Action.REMOVE, ids=ids)
    assert len(report.changed) == 2
    assert [r.email for r in report.refused] == ["ada@example.com"]
    assert "ada@example.com is replied" in report.sentence()
    after = people(db, campaign)
    assert after["grace@example.com"].status is EnrollmentStatus.REMOVED
    assert after["grace@example.com"].next_due_at is None
    assert after["ada@example.com"].status is EnrollmentStatus.REPLIED
    db.refresh(campaign)
    assert campaign.status is CampaignStatus.COMPLETED


def test_a_paused_recipient_keeps_the_campaign_from_completing(
    db: Session, user: User, campaign: Campaign
) -> None:
    everyone = people(db, campaign)
    act(db, user, campaign.id, action=Action.PAUSE, ids=[everyone["ada@example.com"].id])
    others = [everyone["grace@example.com"].id, everyone["alan@turing.org"].id]
    act(db, user, campaign.id, action=Action.REMOVE, ids=others)
    db.refresh(campaign)
    assert campaign.status is CampaignStatus.ACTIVE


def test_move_to_another_campaign_of_the_same_owner(
    db: Session, user: User, campaign: Campaign
) -> None:
    mailbox = db.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    other = make_campaign(db, user, mailbox, name="Frontend engineers")
    add(db, user, other, RecipientIn("alan@turing.org", first_name="Alan"))
    everyone = people(db, campaign)
    grace, alan = everyone["grace@example.com"], everyone["alan@turing.org"]
    grace.fields = {"role": "Admiral"}
    db.flush()

    report = act(
        db, user, campaign.id, action=Action.MOVE, ids=[grace.id, alan.id], to_campaign_id=other.id
    )
    assert [e.email for e in report.changed] == ["grace@example.com"]
    assert [r.reason for r in report.refused] == [
        "alan@turing.org is already in “Frontend engineers”"
    ]
    moved = people(db, campaign)
    assert moved["grace@example.com"].status is EnrollmentStatus.MOVED
    assert "Frontend engineers" in moved["grace@example.com"].status_reason
    assert moved["alan@turing.org"].status is EnrollmentStatus.NOT_STARTED
    there = people(db, other)
    assert set(there) == {"grace@example.com", "alan@turing.org"}
    assert there["grace@example.com"].status is EnrollmentStatus.NOT_STARTED
    assert there["grace@example.com"].first_name == "Grace"
    assert there["grace@example.com"].fields == {"role": "Admiral"}
    assert events(db, other.id)[-1].kind == "recipients_moved_in"

    # Only alan is left to move and he is there already: refused outright, with the reason.
    with pytest.raises(Conflict, match="already in “Frontend engineers”"):
        act(db, user, campaign.id, action=Action.MOVE, ids=[alan.id], to_campaign_id=other.id)
    with pytest.raises(InvalidInput, match="choose another one"):
        act(db, user, campaign.id, action=Action.MOVE, ids=[alan.id], to_campaign_id=campaign.id)
    # A campaign of another owner is no destination, even for an admin who can see it.
    teammate = make_user(db, "bob@example.com", role=Role.MEMBER)
    theirs = make_campaign(db, teammate, make_mailbox(db, teammate, "bob@gmail.test"))
    with pytest.raises(InvalidInput, match="same owner"):
        act(db, user, campaign.id, action=Action.MOVE, ids=[alan.id], to_campaign_id=theirs.id)


def test_search_filter_and_sort(db: Session, user: User, campaign: Campaign) -> None:
    def emails(**chosen: Any) -> list[str]:
        found = recipient_repository.filtered(
            db, campaign.id, RecipientFilter(**chosen), offset=0, limit=50
        )
        return [e.email for e in found]

    assert emails(q="LOVE") == ["ada@example.com"]
    assert emails(q="grace hop") == ["grace@example.com"]
    assert emails(q="%") == []
    assert emails(domain="turing.org") == ["alan@turing.org"]
    assert emails(domain="@EXAMPLE.com", sort="email") == ["ada@example.com", "grace@example.com"]
    assert emails(sort="email", descending=True) == [
        "grace@example.com",
        "alan@turing.org",
        "ada@example.com",
    ]
    act(
        db, user, campaign.id, action=Action.PAUSE, ids=[people(db, campaign)["ada@example.com"].id]
    )
    assert emails(status=EnrollmentStatus.PAUSED) == ["ada@example.com"]
    assert emails(step=0, sort="email") == [
        "ada@example.com",
        "alan@turing.org",
        "grace@example.com",
    ]
    assert emails(step=1) == []
    assert (
        recipient_repository.count_filtered(db, campaign.id, RecipientFilter(domain="example.com"))
        == 2
    )
