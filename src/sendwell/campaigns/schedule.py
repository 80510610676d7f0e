"""Sending windows: days of the week and hours in a time zone."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sendwell.kit.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Schedule:
    """Empty days means every day; no start and end means any hour."""

    days: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    timezone: str = "UTC"


def parse_schedule(
    days: list[str] | tuple[str, ...] | None,
    start: str | None,
    end: str | None,
    timezone: str | None,
) -> Schedule:
    """A checked schedule, or one error naming every problem."""
    problems: list[str] = []
    chosen = tuple(dict.fromkeys(d.strip().lower()[:3] for d in days or () if d.strip()))
    unknown = [d for d in chosen if d not in DAYS]
    if unknown:
        problems.append(f"Unknown day {unknown[0]!r}; use mon, tue, wed, thu, fri, sat, sun.")
    start, end = (start or "").strip() or None, (end or "").strip() or None
    for label, value in (("start", start), ("end", end)):
        if value is not None and not TIME.match(value):
            problems.append(f"The {label} time must look like 09:00 (24-hour clock).")
    if (start is None) != (end is None):
        problems.append("Give both a start and an end time, or neither.")
    elif start and end and TIME.match(start) and TIME.match(end) and start >= end:
        problems.append("The end time must be later than the start time.")
    zone = (timezone or "UTC").strip() or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"Unknown time zone {zone!r}; use a name such as Europe/Paris.")
    if problems:
        raise InvalidInput(" ".join(problems), code="invalid_schedule")
    ordered = tuple(d for d in DAYS if d in chosen)
    return Schedule(days=ordered, start=start, end=end, timezone=zone)


def common_time_zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def known_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone name this server knows (Asia/Tokyo, UTC…)."""
    return name in _known_zones()
