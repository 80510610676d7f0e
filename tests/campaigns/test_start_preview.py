"""Start confirmed: who gets the first email, when it goes (window, pace) and from where."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from sendwell.campaigns import service, validation
from sendwell.campaigns.recipients import RecipientIn
from sendwell.campaigns.schedule import parse_schedule
from sendwell.dispatch import start_preview
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict
from sendwell.models import User
from tests.campaigns.test_service import add, make_campaign, make_mailbox, make_user

PEOPLE = [RecipientIn(f"p{i}@example.com", first_name=f"P{i}") for i in range(3)]


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


def test_the_first_email_waits_for_the_window_in_the_campaigns_time_zone(
    db: Session, user: User
) -> None:
    mailbox = make_mailbox(db, user)
    campaign = service.create_campaign(
        db,
        user,
        name="Auckland mornings",
        mailbox_id=mailbox.id,
        steps=[service.StepIn("Hi {{ first_name }}", "Hello")],
        schedule=parse_schedule(
            ["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00", "Pacific/Auckland"
        ),
        start_delay_minutes=30,
    )
    add(db, user, campaign, *PEOPLE)
    # Monday 7 December 2026, 18:00 in Auckland (UTC+13): the window has closed for the day.
    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    shown = start_preview.preview(db, user, campaign.id, now=now, host_interval=timedelta(0))
    assert shown.recipients == 3
    assert shown.mailbox_email == "ada@gmail.test"
    # Tuesday 09:00 in Auckland.
    assert shown.first_send_at == datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    # Inside the window, the first email goes after the start delay.
    inside = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 13:00 in Auckland
    shown = start_preview.preview(db, user, campaign.id, now=inside, host_interval=timedelta(0))
    assert shown.first_send_at == inside + timedelta(minutes=30)


def test_the_first_email_waits_behind_the_accounts_other_campaigns(db: Session, user: User) -> None:
    mailbox = make_mailbox(db, user)
    other = make_campaign(db, user, mailbox, name="Already sending", start_delay_minutes=0)
    add(db, user, other, *PEOPLE[:2])
    service.start(db, user, other.id)
    campaign = make_campaign(db, user, mailbox, name="Next", start_delay_minutes=0)
    add(db, user, campaign, *PEOPLE)
    now = utcnow() + timedelta(seconds=5)
    shown = start_preview.preview(db, user, campaign.id, now=now, host_interval=timedelta(0))
    # Two steps of the other campaign go first, each followed by the account's gap (60 s).
    assert shown.first_send_at >= now + timedelta(seconds=2 * 60)
    assert shown.recipients == 3


def test_start_preview_is_refused_as_start_would_be(db: Session, user: User) -> None:
    mailbox = make_mailbox(db, user)
    campaign = make_campaign(db, user, mailbox)
    with pytest.raises(validation.CampaignNotReady, match="cannot start yet"):
        start_preview.preview(db, user, campaign.id, now=utcnow(), host_interval=timedelta(0))
    add(db, user, campaign)
    service.start(db, user, campaign.id)
    with pytest.raises(Conflict):
        start_preview.preview(db, user, campaign.id, now=utcnow(), host_interval=timedelta(0))
