"""What every benchmark shares: the profile (quick or full), figures and their statistics."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bench.stack import Lab

ROOT = Path(__file__).resolve().parents[1]
Summary = Literal["median", "p50", "p99", "max"]


class BenchError(RuntimeError):
    """A benchmark could not be measured (a process died, a deadline passed)."""


@dataclass(frozen=True)
class Profile:
    """Sizes and repetitions: quick (`make bench`) or full (`make bench FULL=1`)."""

    full: bool
    repeats: int
    send_messages: int
    anchor_jobs: int
    resume_trials: int
    detection_trials: int
    health_check_minutes: float
    scale_sizes: tuple[int, ...]
    worker_window_seconds: float
    import_repeats: int
    import_rows: int = 100_000
    due: int = 10_000
    claims: int = 100
    claim_campaigns: int = 10
    pause_campaigns: int = 200
    paced_mailboxes: int = 2_000
    paced_gap_seconds: int = 30
    paced_recipients: int = 15
    paced_warmup_seconds: int = 60
    paced_window_seconds: int = 180
    quiet_mailboxes: int = 10_000
    quiet_window_seconds: int = 120

    @classmethod
    def quick(cls) -> Profile:
        return cls(
            full=False,
            repeats=3,
            send_messages=150,
            anchor_jobs=1_000,
            resume_trials=30,
            detection_trials=3,
            health_check_minutes=0.05,
            scale_sizes=(10_000, 100_000),
            worker_window_seconds=5.0,
            import_repeats=1,
        )

    @classmethod
    def large(cls) -> Profile:
        return cls(
            full=True,
            repeats=5,
            send_messages=1_000,
            anchor_jobs=10_000,
            resume_trials=100,
            detection_trials=8,
            health_check_minutes=0.1,
            scale_sizes=(10_000, 100_000, 1_000_000),
            worker_window_seconds=15.0,
            import_repeats=3,
            paced_mailboxes=10_000,
            paced_gap_seconds=60,
            paced_recipients=15,
            paced_warmup_seconds=120,
            paced_window_seconds=360,
            quiet_window_seconds=300,
        )


@dataclass
class Figure:
    """One measured quantity: its values (one per run or trial) and how to read them."""

    group: str
    name: str
    unit: str
    values: list[float]
    summary: Summary = "median"
    target: str = ""
    met: bool | None = None
    versus: str = ""
    note: str = ""
    digits: int = 1

    @property
    def value(self) -> float:
        return summarise(self.values, self.summary)

    def show(self, number: float) -> str:
        return f"{number:,.{self.digits}f}"

    @property
    def spread(self) -> str:
        if not self.values:
            return "—"
        return f"{self.show(min(self.values))}-{self.show(max(self.values))}"

    @property
    def headline(self) -> str:
        if not self.values:
            return "not measured"
        label = "" if self.summary == "median" else f"{self.summary} "
        return f"{label}{self.show(self.value)} {self.unit}".strip()


@dataclass
class Section:
    """A benchmark's figures and the conditions it ran under, for the report."""

    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def summarise(values: Sequence[float], how: Summary) -> float:
    if not values:
        return float("nan")
    if how == "max":
        return max(values)
    if how == "p99":
        return percentile(values, 99)
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (the usual 'inclusive' definition)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def chunks(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


Benchmark = Callable[[Profile, "Lab"], Section]
