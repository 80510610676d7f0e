"""Sending windows: days of the week and hours in a time zone."""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
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


def common_time_zones(keep: str | None = None) -> list[str]:
    """Current IANA names for the editor's list, in "Area/Location" form, sorted.

    `available_timezones()` also lists the database's backward-compatible links (US/Pacific,
    Asia/Calcutta, …). The tz database's own tables name the current zones: zone1970.tab
    (one line per region) and zone.tab (one per country, so Europe/Amsterdam stays),
    "The tz database's zone1970.tab and zone.tab" in
    https://data.iana.org/time-zones/tz-link.html and the tzfile's theory.html. Without
    them (a system with no tables) the list is every name but Etc/. `keep` (a campaign's
    own zone, even an old alias) stays in the list so that saving the form keeps it.
    """
    names = available_timezones()
    current = _zone_table_names()
    listed = {
        z for z in (current & names if current else names) if "/" in z and not z.startswith("Etc/")
    }
    if keep and keep in names and "/" in keep:
        listed.add(keep)
    return sorted(listed)


@functools.cache
def _zone_table_names() -> frozenset[str]:
    for directory in zoneinfo.TZPATH:
        found: set[str] = set()
        for table in ("zone1970.tab", "zone.tab"):
            path = Path(directory) / table
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if line and not line.startswith("#"):
                    columns = line.split("\t")
                    if len(columns) >= 3:
                        found.add(columns[2].strip())
        if found:
            return frozenset(found)
    return frozenset()


def days_words(days: str | tuple[str, ...] | list[str]) -> str:
    """A schedule's days as people write them: "Mon, Tue, Wed"; none is "every day"."""
    chosen = days.split(",") if isinstance(days, str) else list(days)
    named = [d.strip().capitalize() for d in chosen if d.strip()]
    return ", ".join(named) if named else "every day"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def known_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone name this server knows (Asia/Tokyo, UTC…)."""
    return name in _known_zones()
