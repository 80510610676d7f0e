"""Background work: each feature's jobs, declared once, started by kind by serve and worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendwell import wiring
from sendwell.kit.jobs import Every, JobKind, JobRegistry
from tests.conftest import make_settings


def test_every_features_jobs_in_starting_order() -> None:
    declared = [(job.name, job.kind) for job in wiring.jobs().declared()]
    assert declared == [
        ("mailbox_health_check", JobKind.UPKEEP),
        ("dispatcher", JobKind.SENDING),
        ("webhook_delivery", JobKind.SENDING),
    ]


def test_a_name_is_declared_once() -> None:
    registry = JobRegistry[None]()
    registry.add("tick", kind=JobKind.UPKEEP, build=lambda *_: Every(60, lambda: None, "tick"))
    with pytest.raises(ValueError, match="A job named tick is declared twice"):
        registry.add("tick", kind=JobKind.SENDING, build=lambda *_: Every(60, print, "tick"))


def test_a_process_runs_only_the_kinds_it_asks_for(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'jobs.db'}")
    ticked = threading.Event()
    registry = JobRegistry[None]()
    registry.add("tick", kind=JobKind.UPKEEP, build=lambda *_: Every(0.01, ticked.set, "tick"))
    registry.add("send", kind=JobKind.SENDING, build=lambda *_: Every(60, lambda: None, "send"))
    factory: sessionmaker[Session] = sessionmaker()

    worker = registry.start([JobKind.SENDING], settings, factory, None)
    assert worker.names == ["send"]
    worker.stop()
    assert not ticked.is_set()

    serve = registry.start([JobKind.UPKEEP, JobKind.SENDING], settings, factory, None)
    assert serve.names == ["tick", "send"]
    assert ticked.wait(30)
    serve.stop()
