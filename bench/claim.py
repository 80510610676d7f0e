"""4. Scale of the claim: 10k recipients due among 10k, 100k (and 1M) enrollments.

For each size the dataset is bulk-loaded (see `bench.dataset`) for one mailbox with 10
active campaigns. In this process a real `Dispatcher` claims 100 steps in a row, in batches
as a worker does with pacing off (each batch its own committed unit of work, its messages
composed); the claims are undone between runs. The queries a worker runs per batch, per
finished recipient and when idle are timed
on their own, and one batch is repeated with 200 active campaigns. On PostgreSQL a real
`sendwell worker` then sends from the dataset for a few seconds through a linked sandbox
mailbox; its peak RSS is read from /proc (VmHWM) before it is stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from bench import dataset
from bench.common import BenchError, Figure, Profile, Section, ratio
from bench.stack import Lab, Stack, database, peak_rss_mb, seed_owner, wait_until
from sendwell.config import Settings
from sendwell.db import make_session_factory, session_scope
from sendwell.dispatch import repository as repo
from sendwell.dispatch.engine import SEND_BATCH, Dispatcher
from sendwell.dispatch.outcomes import complete_if_finished
from sendwell.dispatch.runner import build_dispatcher
from sendwell.kit.clock import utcnow
from sendwell.mailboxes.provider_services import build_services
from sendwell.models import Campaign, Mailbox, User
from sendwell.providers.registry import build_registry, make_http_client

GROUP = "4. Scale of the claim"
QUERY_REPEATS = 10
MANY_CAMPAIGN_RUNS = 2
UNDO_CLAIMS = [
    """UPDATE enrollments SET next_due_at = (
        SELECT l.not_before FROM send_ledger AS l
        WHERE l.enrollment_id = enrollments.id AND l.status = 'claimed')
    WHERE id IN (SELECT enrollment_id FROM send_ledger WHERE status = 'claimed')""",
    "DELETE FROM send_ledger WHERE status = 'claimed'",
    "UPDATE mailboxes SET send_not_before = NULL, sender_until = NULL",
]


@dataclass
class Scale:
    """What one backend measured, by size."""

    claims: dict[int, list[float]] = field(default_factory=dict)
    queries: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    memory: dict[int, tuple[float, float]] = field(default_factory=dict)
    many_campaigns: list[float] = field(default_factory=list)


def make_dispatcher(engine: Engine, url: str, stack: Stack | None) -> Dispatcher:
    """A dispatcher as `sendwell worker` builds it (sandbox hosts; the stack's keys if any)."""
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=stack.secret_key if stack else "bench-" + "k" * 40,
        token_keys=stack.token_keys if stack else Fernet.generate_key().decode(),
        sandbox=True,
        sandbox_url=stack.sandbox_url if stack else "http://127.0.0.1:9/sandbox",
    )
    services = build_services(settings, build_registry(settings, make_http_client(settings)))
    return build_dispatcher(settings, make_session_factory(engine), services)


def ready_to_claim(engine: Engine, mailbox_id: int) -> None:
    """Pacing off, and the mailbox's replies just read (so claiming reads nothing first)."""
    with engine.begin() as connection:
        connection.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(
                send_not_before=None,
                inbound_checked_at=utcnow(),
                min_gap_seconds=0,
                daily_cap=10_000,
            )
        )


def claim_batch(dispatcher: Dispatcher, engine: Engine, mailbox_id: int, count: int) -> float:
    """Milliseconds for `count` claims in a row; the claims are undone afterwards."""
    ready_to_claim(engine, mailbox_id)
    started = time.perf_counter()
    claimed = 0
    while claimed < count:
        batch = dispatcher.claim(mailbox_id, min(SEND_BATCH, count - claimed))
        if not batch:
            raise BenchError("a claim found nothing although 10k steps are due")
        claimed += len(batch)
    elapsed = (time.perf_counter() - started) * 1000
    with engine.begin() as connection:
        for statement in UNDO_CLAIMS:
            connection.execute(text(statement))
    return elapsed


def query_times(engine: Engine, mailbox_id: int) -> dict[str, list[float]]:
    """Milliseconds per run of the queries whose cost could grow with the data."""
    factory = make_session_factory(engine)
    with session_scope(factory) as db:
        ids = list(db.scalars(select(Campaign.id).where(Campaign.mailbox_id == mailbox_id)))
    now = utcnow()
    queries: dict[str, Callable[[Session], object]] = {
        "active_campaigns with steps (per batch)": lambda db: repo.active_campaigns_of(
            db, [mailbox_id]
        ),
        "due_enrollments (per batch of 50)": lambda db: repo.due_enrollments(
            db, ids, now, SEND_BATCH
        ),
        "sends_since, daily cap (per batch)": lambda db: repo.sends_since_of(
            db, [mailbox_id], now - timedelta(days=1)
        ),
        "complete_if_finished, first pending (per finished recipient)": lambda db: (
            complete_if_finished(db, ids[0])
        ),
        "earliest_due_by_campaign (per idle pass)": lambda db: repo.earliest_due_by_campaign(
            db, now
        ),
    }
    times: dict[str, list[float]] = {}
    for name, query in queries.items():
        times[name] = []
        for _ in range(QUERY_REPEATS):
            db = factory()
            try:
                started = time.perf_counter()
                query(db)
                times[name].append((time.perf_counter() - started) * 1000)
            finally:
                db.rollback()
                db.close()
    return times


def worker_window(
    stack: Stack, mailbox_id: int, address: str, seconds: float
) -> tuple[float, float]:
    """(peak RSS in MB, messages per second) of a `sendwell worker` sending for `seconds`."""
    ready_to_claim(stack.db.engine, mailbox_id)
    before = len(stack.sent(address))
    stack.workers += 1
    label = f"worker-{stack.workers}"
    proc = stack.procs.start(label, ["-m", "sendwell", "worker"], stack.env())
    try:
        stack.wait_for_log(label, "is sending")
        wait_until(lambda: len(stack.sent(address)) > before, 120, "the first send", stack.procs)
        first = len(stack.sent(address))
        time.sleep(seconds)
        rate = (len(stack.sent(address)) - first) / seconds
        return peak_rss_mb(proc.pid), rate
    finally:
        stack.procs.stop(label)


def measure(backend: str, profile: Profile, lab: Lab) -> Scale:
    """Every size on one backend. PostgreSQL gets a linked mailbox and a real worker."""
    found = Scale()
    with ExitStack() as exits:
        stack: Stack | None = None
        address = f"scale-{backend}@gmail.test"
        if backend == "postgresql":
            stack = lab.stack("scale-postgresql", backend, dispatcher=False)
            exits.callback(lab.close, "scale-postgresql")
            db = stack.db
            mailbox_id = stack.link(address)
            with session_scope(make_session_factory(db.engine)) as session:
                owner_id = int(session.scalars(select(User.id)).one())
        else:
            db = exits.enter_context(database(backend, lab.folder))
            seed_owner(db.engine)
            owner_id, mailbox_id = dataset.mailbox_row(db.engine, address)
        dispatcher = make_dispatcher(db.engine, db.url, stack)

        def load(size: int, campaigns: int) -> None:
            dataset.load(
                db.engine,
                owner_id=owner_id,
                mailbox_id=mailbox_id,
                campaigns=campaigns,
                enrollments=size,
                due=profile.due,
            )

        for size in profile.scale_sizes:
            load(size, profile.claim_campaigns)
            found.claims[size] = [
                claim_batch(dispatcher, db.engine, mailbox_id, profile.claims)
                for _ in range(profile.repeats)
            ]
            found.queries[size] = query_times(db.engine, mailbox_id)
            if stack is not None:
                found.memory[size] = worker_window(
                    stack, mailbox_id, address, profile.worker_window_seconds
                )
        load(profile.scale_sizes[0], profile.pause_campaigns)
        found.many_campaigns = [
            claim_batch(dispatcher, db.engine, mailbox_id, profile.claims)
            for _ in range(MANY_CAMPAIGN_RUNS)
        ]
    return found


def run(profile: Profile, lab: Lab) -> Section:
    figures: list[Figure] = []
    for backend, db_name in (("postgresql", "PostgreSQL"), ("sqlite", "SQLite")):
        figures += scale_figures(db_name, profile, measure(backend, profile, lab))
    return Section(
        GROUP,
        f"{profile.due:,} recipients due among each size of enrollments, in "
        f"{profile.claim_campaigns} active two-step campaigns of one mailbox; the others are "
        "finished or wait three days for step 2, each with its step-1 row in the ledger (sent "
        f"2-30 days ago). Claiming {profile.claims} steps takes `Dispatcher.claim` calls of "
        f"up to {SEND_BATCH} steps each (a worker's batch with pacing off), each committed "
        "with its messages composed (undone between runs). Query timings: 10 runs each, read "
        "only. Peak RSS: a `sendwell worker` sending for "
        f"{profile.worker_window_seconds:g} s from the dataset (its send rate in that window "
        "is shown too).",
        figures,
    )


def scale_figures(db_name: str, profile: Profile, found: Scale) -> list[Figure]:
    smallest, largest = profile.scale_sizes[0], profile.scale_sizes[-1]
    base = Figure(GROUP, "", "", found.claims[smallest]).value
    figures = []
    for size in profile.scale_sizes:
        value = Figure(GROUP, "", "", found.claims[size]).value
        share = ratio(value, base)
        figures.append(
            Figure(
                GROUP,
                f"{db_name}: claim a batch of {profile.claims}, {size:,} enrollments",
                "ms",
                found.claims[size],
                target="≤ 1.5x at 10k" if size == largest else "",
                met=share <= 1.5 if size == largest else None,
                versus=f"{share:.2f}x at {smallest:,}",
            )
        )
    many = Figure(GROUP, "", "", found.many_campaigns).value
    figures.append(
        Figure(
            GROUP,
            f"{db_name}: the same with {profile.pause_campaigns} active campaigns, "
            f"{smallest:,} enrollments",
            "ms",
            found.many_campaigns,
            versus=f"{ratio(many, base):.2f}x with {profile.claim_campaigns} campaigns",
        )
    )
    for query in found.queries[smallest]:
        low = Figure(GROUP, "", "", found.queries[smallest][query]).value
        for size in (smallest, largest):
            high = Figure(GROUP, "", "", found.queries[size][query]).value
            figures.append(
                Figure(
                    GROUP,
                    f"{db_name}: {query}, {size:,} enrollments",
                    "ms",
                    found.queries[size][query],
                    versus=f"{ratio(high, low):.2f}x at {smallest:,}" if size != smallest else "",
                    digits=2,
                )
            )
    for size, (rss, rate) in found.memory.items():
        figures.append(
            Figure(
                GROUP,
                f"{db_name}: `sendwell worker` peak RSS, {size:,} enrollments",
                "MB",
                [rss],
                summary="max",
                target="< 150 MB",
                met=rss < 150,
                note=f"sent {rate:.1f} msg/s meanwhile",
            )
        )
    return figures
