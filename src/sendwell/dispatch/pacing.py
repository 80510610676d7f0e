"""When a campaign may send: its schedule window, the mailbox's gap and daily cap, backoff."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sendwell.campaigns.schedule import DAYS
from sendwell.models import Campaign, Enrollment

DAY = timedelta(days=1)
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
RATE_LIMIT_DEFAULT = timedelta(seconds=60)
# A minimum gap is stretched by up to this share, so sends never fall on a visible rhythm.
GAP_JITTER = 0.25


def next_gap(min_gap_seconds: int, rng: random.Random | None = None) -> timedelta:
    """The wait before a mailbox's next send: the minimum gap plus a random stretch."""
    if min_gap_seconds <= 0:
        return timedelta(0)
    stretch = (rng or random).uniform(0, GAP_JITTER)
    return timedelta(seconds=min_gap_seconds * (1 + stretch))


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter, capped: 30 s, 1 min, 2 min … at most an hour."""
    ceiling = min(RETRY_CAP, RETRY_BASE * (2 ** max(attempts - 1, 0)))
    return timedelta(
        seconds=(rng or random).uniform(ceiling.total_seconds() / 2, ceiling.total_seconds())
    )


def window_opens(campaign: Campaign, now: datetime, timezone: str = "") -> datetime:
    """`now` when the campaign's schedule allows sending now, else when it next does; in
    `timezone` (a recipient's own) when given, else in the campaign's."""
    days = [d for d in campaign.schedule_days.split(",") if d]
    if not days and not campaign.schedule_start:
        return now
    zone = ZoneInfo(timezone or campaign.timezone or "UTC")
    local = now.astimezone(zone)
    start = _clock(campaign.schedule_start) or (0, 0)
    end = _clock(campaign.schedule_end) or (24, 0)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if days and DAYS[day.weekday()] not in days:
            continue
        opens = datetime(day.year, day.month, day.day, *start, tzinfo=zone)
        closes = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(
            hours=end[0], minutes=end[1]
        )
        if local < closes:
            return max(now, opens.astimezone(now.tzinfo))
    return now + DAY


def _clock(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    hours, minutes = value.split(":")
    return int(hours), int(minutes)


def recipient_window_opens(campaign: Campaign, enrollment: Enrollment, now: datetime) -> datetime:
    """When the campaign's window is open for this recipient: in their own time zone when the
    campaign's recipients carry one."""
    zone = enrollment.timezone if campaign.recipient_time_zones else ""
    return window_opens(campaign, now, zone)


def campaign_window_opens(campaign: Campaign, now: datetime) -> datetime:
    """When the campaign may send to anyone: now for a campaign whose recipients carry their
    own time zones (each is judged at the claim), else its own window."""
    return now if campaign.recipient_time_zones else window_opens(campaign, now)
