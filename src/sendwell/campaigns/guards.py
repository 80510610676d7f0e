"""A campaign's delivery guards: when it pauses itself because too many sends bounce, and
how long a recipient who answered with an automatic reply is held."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sendwell.kit.errors import InvalidInput
from sendwell.models import Campaign

MAX_WINDOW = 10_000
DEFAULT_HOLD_DAYS = 3
MAX_HOLD_DAYS = 60


@dataclass(frozen=True)
class Guards:
    """The bounce-rate pause: at least `bounce_pause_percent` % of the campaign's last
    `bounce_pause_min_sends` sends bounced (see dispatch/bounce_guard.py); and the days a
    recipient is held after an automatic reply (see dispatch/holds.py)."""

    bounce_pause_percent: float
    bounce_pause_min_sends: int
    auto_reply_hold_days: int = DEFAULT_HOLD_DAYS


def check_guards(
    *,
    bounce_pause_percent: float,
    bounce_pause_min_sends: int,
    auto_reply_hold_days: int = DEFAULT_HOLD_DAYS,
) -> Guards:
    """The settings, or a sentence saying which one is out of range."""
    if not math.isfinite(bounce_pause_percent) or not 0 < bounce_pause_percent <= 100:
        raise InvalidInput(
            "The bounce rate that pauses the campaign must be more than 0 % and at most 100 %.",
            code="invalid_bounce_rate",
        )
    if not 1 <= bounce_pause_min_sends <= MAX_WINDOW:
        raise InvalidInput(
            f"The bounce rate is measured over 1 to {MAX_WINDOW:,} sends.",
            code="invalid_bounce_window",
        )
    if not 0 <= auto_reply_hold_days <= MAX_HOLD_DAYS:
        raise InvalidInput(
            f"A recipient who sends an automatic reply is held for 0 to {MAX_HOLD_DAYS} days "
            "(0: not held).",
            code="invalid_hold_days",
        )
    return Guards(round(bounce_pause_percent, 2), bounce_pause_min_sends, auto_reply_hold_days)


def guards_of(campaign: Campaign) -> Guards:
    return Guards(
        campaign.bounce_pause_percent,
        campaign.bounce_pause_min_sends,
        campaign.auto_reply_hold_days,
    )


def apply_guards(campaign: Campaign, guards: Guards) -> None:
    campaign.bounce_pause_percent = guards.bounce_pause_percent
    campaign.bounce_pause_min_sends = guards.bounce_pause_min_sends
    campaign.auto_reply_hold_days = guards.auto_reply_hold_days


def percent_text(percent: float) -> str:
    """2.0 as "2", 2.5 as "2.5": how a rate is shown and typed."""
    return f"{percent:g}"
