"""The next email's real time, or why there is none: pause, a window closed in the
campaign's time zone, the mailbox's pace shared by two campaigns, an auto-reply hold."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from sendwell.campaigns import service
from sendwell.campaigns.schedule import DAYS
from sendwell.db import session_scope
from sendwell.dispatch import forecast
from sendwell.kit.clock import utcnow
from sendwell.models import Campaign, Enrollment, User
from tests.dispatch.conftest import World

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}.", 0)]
TWO_STEPS = [*ONE_STEP, ("", "Any thoughts?", 2 * 24 * 60)]


def _forecasts(world: World, campaign_id: int, now: datetime) -> dict[str, forecast.Forecast]:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        rows = list(db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign_id)))
        found = forecast.for_enrollments(db, campaign, rows, now=now)
        return {row.email: found[row.id] for row in rows}


def _campaign_forecast(world: World, campaign_id: int, now: datetime) -> forecast.Forecast:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        return forecast.for_campaigns(db, [campaign], now=now)[campaign_id]


def _set_due(world: World, campaign_id: int, due: dict[str, datetime]) -> None:
    with session_scope(world.factory) as db:
        for email, moment in due.items():
            db.execute(
                update(Enrollment)
                .where(Enrollment.campaign_id == campaign_id, Enrollment.email == email)
                .values(next_due_at=moment)
            )


def test_a_paused_campaign_shows_no_time_but_says_how_it_resumes(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    world.dispatcher().run_until_idle()
    with session_scope(world.factory) as db:
        service.pause(db, db.scalars(select(User)).first(), campaign_id)
    now = utcnow()
    shown = _forecasts(world, campaign_id, now)
    for email in ("ann@example.com", "bob@example.com"):
        assert shown[email].at is None
        assert shown[email].text == "Paused — resumes when you click Resume"
        assert shown[email].label == "Paused · step 1 sent"
        assert "In Progress" not in shown[email].label
    assert _campaign_forecast(world, campaign_id, now).text == forecast.PAUSED_WORDS


def test_a_window_closed_in_the_campaigns_time_zone_moves_the_time_to_its_opening(
    world: World,
) -> None:
    zone = "Pacific/Auckland"
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    now = utcnow().replace(microsecond=0)
    day = (now.astimezone(ZoneInfo(zone)) + timedelta(days=2)).date()
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                schedule_days=DAYS[day.weekday()],
                schedule_start="09:00",
                schedule_end="17:00",
                timezone=zone,
            )
        )
    _set_due(world, campaign_id, {"ann@example.com": now - timedelta(minutes=5)})
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZoneInfo(zone))
    ann = _forecasts(world, campaign_id, now)["ann@example.com"]
    assert ann.at == opens
    weekday = opens.strftime("%a")
    assert ann.words.startswith(f"Waiting for the sending window (opens {weekday} ")
    assert ann.words.endswith(" 09:00 Pacific/Auckland)")
    assert ann.label == "Not Started"
    assert _campaign_forecast(world, campaign_id, now).at == opens


def test_two_campaigns_on_one_mailbox_share_its_pace_in_due_order(world: World) -> None:
    gap_seconds = 600
    first = world.campaign(
        ONE_STEP, ["ann@example.com", "bob@example.com"], min_gap_seconds=gap_seconds
    )
    second = world.campaign(
        ONE_STEP, ["cy@example.com", "dee@example.com"], min_gap_seconds=gap_seconds
    )
    now = utcnow().replace(microsecond=0)
    _set_due(
        world,
        first,
        {"ann@example.com": now - timedelta(minutes=30), "bob@example.com": now},
    )
    _set_due(
        world,
        second,
        {
            "cy@example.com": now - timedelta(minutes=20),
            "dee@example.com": now + timedelta(hours=3),
        },
    )
    # The dispatcher's gap is the minimum plus up to 25 % jitter: on average 12.5 % more.
    gap = timedelta(seconds=gap_seconds * 1.125)
    mine, theirs = _forecasts(world, first, now), _forecasts(world, second, now)
    assert mine["ann@example.com"].at == now
    assert theirs["cy@example.com"].at == now + gap
    assert mine["bob@example.com"].at == now + 2 * gap
    assert mine["bob@example.com"].words == "2 emails ahead on ada@gmail.test at its pace"
    # Due well after the queue has drained: it goes when it is due.
    assert theirs["dee@example.com"].at == now + timedelta(hours=3)
    assert theirs["dee@example.com"].words == ""
    assert _campaign_forecast(world, second, now).at == now + gap


def test_a_recipient_held_after_an_auto_reply_waits_for_the_holds_end(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    world.dispatcher().run_until_idle()
    now = utcnow().replace(microsecond=0)
    until = now + timedelta(days=2)
    with session_scope(world.factory) as db:
        db.execute(
            update(Enrollment)
            .where(Enrollment.campaign_id == campaign_id, Enrollment.email == "ann@example.com")
            .values(held_until=until, hold_reason="Automatic reply.", next_due_at=now)
        )
    _set_due(world, campaign_id, {"bob@example.com": now + timedelta(days=1)})
    shown = _forecasts(world, campaign_id, now)
    assert shown["ann@example.com"].at == until
    local = until.astimezone(ZoneInfo("UTC"))
    assert shown["ann@example.com"].words == (
        f"Held after an auto-reply until {local:%a} {local.day} {local:%b %H:%M} UTC"
    )
    assert shown["bob@example.com"].at == now + timedelta(days=1)
    assert shown["bob@example.com"].label == "In Progress · step 1"
    # The campaign's next email is Bob's, due before Ann's hold ends.
    assert _campaign_forecast(world, campaign_id, now).at == now + timedelta(days=1)


def test_finished_recipients_say_how_they_finished(world: World) -> None:
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    world.dispatcher().run_until_idle()
    shown = _forecasts(world, campaign_id, utcnow())
    assert shown["ann@example.com"].at is None
    assert shown["ann@example.com"].text == "Completed"
    assert _campaign_forecast(world, campaign_id, utcnow()).text == "Completed"


def test_a_long_queue_places_each_step_behind_every_step_ahead_of_it(world: World) -> None:
    """More steps queued than the forecast reads at first, most due at the same moment: a
    recipient's own page, the campaign's and a later campaign's each count every step ahead,
    and a recipient held after an auto-reply goes after the steps due before the hold ends."""
    gap_seconds = 600
    gap = timedelta(seconds=gap_seconds * 1.125)
    many = [f"r{n:03}@example.com" for n in range(forecast.FIRST_READ + 50)]
    first = world.campaign(ONE_STEP, many, min_gap_seconds=gap_seconds)
    second = world.campaign(ONE_STEP, ["zed@example.com"], min_gap_seconds=gap_seconds)
    now = utcnow().replace(microsecond=0)
    due = now - timedelta(hours=2)
    with session_scope(world.factory) as db:
        db.execute(update(Enrollment).values(next_due_at=due))
        db.execute(
            update(Enrollment)
            .where(Enrollment.email == "r000@example.com")
            .values(held_until=now + timedelta(minutes=30), hold_reason="Automatic reply.")
        )
    ahead = len(many) - 1  # everyone of the first campaign but the held recipient
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, first)
        assert campaign is not None
        held = db.scalars(select(Enrollment).where(Enrollment.email == "r000@example.com")).one()
        # The held recipient's own page asks for them alone.
        alone = forecast.for_enrollments(db, campaign, [held], now=now)[held.id]
    assert alone.at == now + (ahead + 1) * gap
    assert alone.words.startswith("Held after an auto-reply until ")
    later = _campaign_forecast(world, second, now)
    assert later.at == now + ahead * gap
    assert later.words == f"{ahead} emails ahead on ada@gmail.test at its pace"
    shown = _forecasts(world, first, now)
    assert shown["r001@example.com"].at == now
    assert shown[many[-1]].at == now + (ahead - 1) * gap
    assert shown[many[-1]].words == f"{ahead - 1} emails ahead on ada@gmail.test at its pace"
    assert shown["r000@example.com"].at == now + (ahead + 1) * gap
    assert _campaign_forecast(world, first, now).at == now
