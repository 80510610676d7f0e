"""A campaign's sending window: closed now means nothing goes out, and the dispatcher knows
when to look again (the window's opening, in the campaign's time zone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from sendwell.campaigns.schedule import DAYS
from sendwell.db import session_scope
from sendwell.dispatch import engine
from sendwell.kit.clock import utcnow
from sendwell.models import Campaign
from tests.dispatch.conftest import World

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]
ZONE = ZoneInfo("America/New_York")


def opening_in_two_days() -> tuple[str, datetime]:
    """A weekday two days ahead (local) and its 09:00 opening."""
    day = (utcnow().astimezone(ZONE) + timedelta(days=2)).date()
    return DAYS[day.weekday()], datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZONE)


def set_window(
    world: World, campaign_id: int, days: str, start: str | None, end: str | None
) -> None:
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                schedule_days=days,
                schedule_start=start,
                schedule_end=end,
                timezone="America/New_York",
            )
        )


def test_a_closed_window_sends_nothing_and_wakes_the_dispatcher_at_its_opening(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mailbox found quiet is looked at again at the window's opening, not an hour later.
    monkeypatch.setattr(engine, "NOTHING_DUE_HORIZON", timedelta(days=7))
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com", "bob@example.com"])
    day, _opens = opening_in_two_days()
    set_window(world, campaign_id, day, "09:00", "17:00")
    # Inboxes read weekly: the only moment left to wake for is the window's opening.
    dispatcher = world.dispatcher(inbound_interval=timedelta(days=7))

    dispatcher.run_until_idle()
    assert world.sent() == []
    # Asleep at most the idle interval, never past the opening.
    before = utcnow()
    wake = dispatcher.run_once()
    assert before < wake <= utcnow() + engine.IDLE_WAKE

    # With no idle cap, the next pass is exactly when the window opens.
    monkeypatch.setattr(engine, "IDLE_WAKE", timedelta(days=7))
    _day, expected_before = opening_in_two_days()
    wake = dispatcher.run_once()
    _day, expected_after = opening_in_two_days()
    assert wake in {expected_before, expected_after}, wake
    assert world.sent() == []

    # The window opens (today is a sending day, any hour): the steps go out.
    today = DAYS[utcnow().astimezone(ZONE).weekday()]
    set_window(world, campaign_id, today, None, None)
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {("ann@example.com", 1), ("bob@example.com", 1)}


def test_a_window_later_today_opens_at_its_start_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "IDLE_WAKE", timedelta(days=7))
    monkeypatch.setattr(engine, "NOTHING_DUE_HORIZON", timedelta(days=7))
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    local = utcnow().astimezone(ZONE)
    if local.hour >= 21:
        pytest.skip("too close to local midnight for a window later today")
    start = f"{local.hour + 2:02d}:00"
    set_window(world, campaign_id, "", start, "23:30")
    # Inboxes read weekly: the only moment left to wake for is the window's opening.
    dispatcher = world.dispatcher(inbound_interval=timedelta(days=7))

    wake = dispatcher.run_once()

    expected = datetime(local.year, local.month, local.day, local.hour + 2, 0, tzinfo=ZONE)
    assert wake == expected
    assert world.sent() == []
