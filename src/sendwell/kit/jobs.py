"""Background work, declared by each feature next to its code and run the same way by
`sendwell serve` (the app's lifespan) and `sendwell worker`.

A feature adds its jobs to a `JobRegistry` in its `register_jobs(registry)`; the wiring
(`sendwell.wiring.jobs()`) collects them. A process starts the jobs of the kinds it runs
(`start(kinds, settings, factory, services)`) and stops them when it ends, in the same order. A job
is anything with `start()` and `stop()`: a periodic function in a thread (`Every`), or a
long-lived loop such as the dispatcher, which wakes itself when work arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.kit.logging import get_logger

log = get_logger(__name__)
S = TypeVar("S")


class JobKind(StrEnum):
    """Which processes run a job: `serve` runs upkeep, and sending unless told not to;
    `sendwell worker` runs sending only."""

    UPKEEP = "upkeep"
    SENDING = "sending"


class Job(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Declared(Generic[S]):
    """A job as a feature declares it: its name, its kind, and how a process builds it."""

    name: str
    kind: JobKind
    build: Callable[[Settings, sessionmaker[Session], S], Job]


class JobRegistry(Generic[S]):
    """Every feature's jobs, in the order they were declared (which is the order they start)."""

    def __init__(self) -> None:
        self._declared: list[Declared[S]] = []

    def add(
        self,
        name: str,
        *,
        kind: JobKind,
        build: Callable[[Settings, sessionmaker[Session], S], Job],
    ) -> None:
        if any(job.name == name for job in self._declared):
            raise ValueError(f"A job named {name} is declared twice.")
        self._declared.append(Declared(name, kind, build))

    def declared(self) -> list[Declared[S]]:
        return list(self._declared)

    def start(
        self,
        kinds: Iterable[JobKind],
        settings: Settings,
        factory: sessionmaker[Session],
        services: S,
    ) -> Running:
        """Build and start every job of these kinds, in declaration order."""
        wanted = set(kinds)
        started: list[tuple[str, Job]] = []
        for declared in self._declared:
            if declared.kind in wanted:
                job = declared.build(settings, factory, services)
                job.start()
                started.append((declared.name, job))
        return Running(started)


class Running:
    """The jobs one process started; `stop()` stops each, in the order they started."""

    def __init__(self, jobs: list[tuple[str, Job]]) -> None:
        self.jobs = jobs

    @property
    def names(self) -> list[str]:
        return [name for name, _job in self.jobs]

    def stop(self) -> None:
        for _name, job in self.jobs:
            job.stop()


class Every:
    """Runs a function on a fixed interval in a daemon thread until stopped."""

    def __init__(self, seconds: float, job: Callable[[], object], name: str) -> None:
        self.seconds = seconds
        self.job = job
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.job()
            except Exception:
                log.exception("job_failed", name=self.name)
