"""Sending in the recipient's time zone: the campaign's hours apply in each recipient's own
zone when the import gave one, in the engine's claim and in the Resume preview alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from sendwell.campaigns import recipients, service
from sendwell.db import session_scope
from sendwell.dispatch import pacing
from sendwell.kit.clock import utcnow
from sendwell.models import Campaign, Enrollment, User
from tests.dispatch.conftest import World
from tests.dispatch.test_resume import pause_since, preview, resume

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def test_a_nine_to_five_window_opens_at_nine_in_the_recipients_zone() -> None:
    campaign = Campaign(schedule_days="", schedule_start="09:00", schedule_end="17:00")
    campaign.timezone = "Europe/Paris"
    # Monday 7 December 2026, 01:00 UTC is 10:00 in Tokyo: open there, closed in Paris.
    monday = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    assert pacing.window_opens(campaign, monday, "Asia/Tokyo") == monday
    assert pacing.window_opens(campaign, monday) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    # 09:00 UTC is 18:00 in Tokyo: due at Tokyo's next 09:00, 00:00 UTC.
    evening = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    opens = pacing.window_opens(campaign, evening, "Asia/Tokyo")
    assert opens.astimezone(TOKYO) == datetime(2026, 12, 8, 9, 0, tzinfo=TOKYO)
    assert opens == datetime(2026, 12, 8, 0, 0, tzinfo=UTC)


def window_around_tokyo_now() -> tuple[str, str]:
    """Hours open in Tokyo now (with an hour's margin) and closed in New York, 10 h apart."""
    hour = utcnow().astimezone(TOKYO).hour
    start = max(hour - 1, 0)
    return f"{start:02d}:00", f"{hour + 2:02d}:00" if hour < 22 else "23:59"


def next_opening(zone: ZoneInfo, start: str) -> datetime:
    local = utcnow().astimezone(zone)
    opening = local.replace(hour=int(start[:2]), minute=0, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    return opening.astimezone(UTC)


def zoned_campaign(world: World) -> tuple[int, str]:
    campaign_id = world.campaign(ONE_STEP, [], start=False)
    start, end = window_around_tokyo_now()
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        report = recipients.add_recipients(
            db,
            user,
            campaign_id,
            [
                recipients.RecipientIn("kenji@example.com", "Kenji", timezone="Asia/Tokyo"),
                recipients.RecipientIn("nora@example.com", "Nora", timezone="America/New_York"),
                recipients.RecipientIn("mars@example.com", "Mars", timezone="Mars/Olympus"),
            ],
        )
        assert [(s.email, s.reason) for s in report.skipped] == [
            (
                "mars@example.com",
                "unknown time zone “Mars/Olympus”: use an IANA name such as Asia/Tokyo or "
                "Europe/Paris",
            )
        ]
        db.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(schedule_days="", schedule_start=start, schedule_end=end, timezone="UTC")
        )
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.recipient_time_zones
        user = db.scalars(select(User)).first()
        assert user is not None
        service.start(db, user, campaign_id)
    return campaign_id, start


def due_of(world: World, campaign_id: int, email: str) -> datetime | None:
    with session_scope(world.factory) as db:
        return db.scalars(
            select(Enrollment.next_due_at).where(
                Enrollment.campaign_id == campaign_id, Enrollment.email == email
            )
        ).one()


def test_each_recipient_gets_the_email_within_the_hours_of_their_own_zone(world: World) -> None:
    campaign_id, start = zoned_campaign(world)
    world.dispatcher().run_until_idle()
    # Open in Tokyo now: Kenji's email went; Nora's waits for the hours' start in New York.
    assert set(world.sent_by_step(campaign_id)) == {("kenji@example.com", 1)}
    assert due_of(world, campaign_id, "nora@example.com") == next_opening(NEW_YORK, start)


def test_the_resume_preview_agrees_with_the_claim(world: World) -> None:
    campaign_id, start = zoned_campaign(world)
    pause_since(world, campaign_id, utcnow())
    plan = preview(world, campaign_id)
    at = {send.email: send.at for send in plan.due_now}
    assert list(at) == ["kenji@example.com", "nora@example.com"]
    assert at["kenji@example.com"] <= utcnow()
    assert at["nora@example.com"] == next_opening(NEW_YORK, start)
    assert any("in their zone" in note for note in plan.notes)

    resume(world, campaign_id)
    world.dispatcher().run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {("kenji@example.com", 1)}
    assert due_of(world, campaign_id, "nora@example.com") == at["nora@example.com"]
