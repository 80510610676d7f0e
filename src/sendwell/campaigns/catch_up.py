"""The catch-up default a campaign keeps for its Resume: checked where a campaign is saved,
and again where Resume parses its choice (dispatch/resume.py)."""

from __future__ import annotations

from sendwell.kit.errors import InvalidInput

MAX_SKIP_DAYS = 365


def check_skip_days(days: int | str | None) -> int:
    try:
        number = int(str(days).strip())
    except ValueError:
        number = -1
    if not 1 <= number <= MAX_SKIP_DAYS:
        raise InvalidInput(
            f"Skip days must be a whole number from 1 to {MAX_SKIP_DAYS}.",
            code="invalid_catch_up",
        )
    return number
