"""A server-rendered bar chart of messages sent per day, stacked by step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

# Calm, distinct colours for steps: no red, orange or yellow, which read as errors or
# warnings (red is kept for failures and bounces).
STEP_COLOURS = ("#1f5eff", "#12a594", "#8e4ec6", "#0091ff", "#6e56cf", "#978365")
WIDTH, HEIGHT, PADDING = 640, 180, 24


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    days: list[str]
    peak: int
    total: int
    # (step, colour) for each step drawn, in step order.
    legend: list[tuple[int, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT


def daily_sends_chart(rows: list[tuple[str, int, int]], *, today: date, days: int = 30) -> Chart:
    """Bars for (day, step, count) rows over the last `days` days, one colour per step."""
    start = today - timedelta(days=days - 1)
    labels = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    per_day: dict[str, dict[int, int]] = {label: {} for label in labels}
    for day, step, count in rows:
        if day in per_day:
            per_day[day][step] = per_day[day].get(step, 0) + count
    peak = max((sum(steps.values()) for steps in per_day.values()), default=0)
    slot = (WIDTH - 2 * PADDING) / days
    bars: list[Bar] = []
    for index, label in enumerate(labels):
        bottom = float(HEIGHT - PADDING)
        for step in sorted(per_day[label]):
            count = per_day[label][step]
            height = (HEIGHT - 2 * PADDING) * count / peak if peak else 0
            bottom -= height
            bars.append(
                Bar(
                    x=PADDING + index * slot + 1,
                    y=bottom,
                    width=max(slot - 2, 1),
                    height=height,
                    colour=step_colour(step),
                    label=f"{label}: {count} sent (step {step})",
                )
            )
    steps = sorted({step for counts in per_day.values() for step in counts})
    return Chart(
        bars=bars,
        days=labels,
        peak=peak,
        total=sum(sum(s.values()) for s in per_day.values()),
        legend=[(step, step_colour(step)) for step in steps],
    )


def step_colour(step: int) -> str:
    return STEP_COLOURS[(step - 1) % len(STEP_COLOURS)]
