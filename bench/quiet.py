"""9. A quiet fleet: thousands of mailboxes with running campaigns and nothing due.

Most of a large fleet's mailboxes are quiet most of the time: a mailbox sends a few dozen
emails a day and few of them are answered within the hour. What such a fleet costs is its
inbox reads. The same fleet runs twice side by side, two `sendwell worker` on PostgreSQL each
time: (a) on the default schedule (each inbox every 60 s while it sends or receives, the wait
doubling after each quiet read up to 300 s) and (b) with every inbox read every 60 s, the
schedule before (`SENDWELL_INBOUND_QUIET_POLL_SECONDS=60`).

Each mailbox is made as in the paced benchmark (bench/paced.py), its campaign's recipients due
tomorrow. In the start's transaction each inbox is set as one that has been quiet for a
while: read at a moment drawn in the last quiet interval, next due a quiet interval after it,
its cursor the sandbox's current Gmail history id, and each campaign as started a day before.
The workers' first pass claims for every mailbox once and finds it quiet (it is then left out
of the sending walk until its recipient may be due); from then on the fleet is in its steady
state: reads arrive evenly, `mailboxes / quiet interval` a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection, text

from bench import paced
from bench.common import Figure, Profile, Section, ratio
from bench.stack import Lab, Stack, cpu_seconds, vacuum_analyze, wait_until
from sendwell.config import Settings
from sendwell.kit.clock import utcnow

GROUP = "9. A quiet fleet"
# The sandbox's first Gmail history id (sandbox/state.py): a mailbox with no message yet is
# read from there.
FIRST_HISTORY_ID = "1000"
WARMUP_SECONDS = 10
FIRST_PASS_LIMIT = 600
CATCH_UP_LIMIT = 120


def settle(seconds: float) -> Callable[[Connection], None]:
    """Every inbox as one quiet for a while on a `seconds` schedule (PostgreSQL's SQL), and
    every recipient due tomorrow."""

    def then(connection: Connection) -> None:
        now = utcnow()
        connection.execute(
            text(
                "UPDATE mailboxes SET inbound_cursor = :cursor, "
                "inbound_checked_at = :now - random() * :seconds * interval '1 second'"
            ),
            {"cursor": FIRST_HISTORY_ID, "now": now, "seconds": seconds},
        )
        connection.execute(
            text(
                "UPDATE mailboxes SET inbound_read_due_at = "
                "inbound_checked_at + :seconds * interval '1 second'"
            ),
            {"seconds": seconds},
        )
        connection.execute(
            text("UPDATE enrollments SET next_due_at = :later"), {"later": now + timedelta(days=1)}
        )
        # Started long before: no status change since the last read calls for a read first.
        connection.execute(
            text("UPDATE campaigns SET status_changed_at = :then"),
            {"then": now - timedelta(days=1)},
        )

    return then


def first_pass(stack: Stack) -> float:
    """Seconds until the workers have found every mailbox quiet once (each then left out of
    the sending walk until its recipient may be due)."""

    def all_quiet() -> bool:
        with stack.db.engine.connect() as connection:
            return not connection.scalar(
                text("SELECT count(*) FROM mailbox_due_marks WHERE nothing_due_before IS NULL")
            )

    began = time.monotonic()
    wait_until(all_quiet, FIRST_PASS_LIMIT, "every mailbox found quiet", stack.procs, step=0.5)
    return time.monotonic() - began


def caught_up(stack: Stack) -> float:
    """Seconds until the reads that fell due during the first pass are made (counted in the
    window, they would be a backlog drained faster than the schedule, not the schedule); at
    most CATCH_UP_LIMIT: a fleet whose reads cannot keep up is then measured as it is."""
    began = time.monotonic()
    while time.monotonic() - began < CATCH_UP_LIMIT:
        stack.procs.check()
        with stack.db.engine.connect() as connection:
            behind = connection.scalar(
                text(
                    "SELECT count(*) FROM mailboxes "
                    "WHERE inbound_read_due_at < now() - interval '5 seconds'"
                )
            )
        if not behind:
            break
        time.sleep(0.5)
    return time.monotonic() - began


def measure(
    stack: Stack, profile: Profile, quiet_seconds: float
) -> tuple[float, float, float, float, float]:
    """Seconds of the first pass over the fleet and of the reads' catching up after it; then
    inbox reads a second, Sendwell's CPU busy and PostgreSQL's, over the window."""
    # No pacing slots: a mailbox cannot be found quiet before its slot comes, and the first
    # pass measures how long finding every mailbox quiet takes.
    paced.populate(
        stack,
        profile.quiet_mailboxes,
        60,
        recipients_each=1,
        then=settle(quiet_seconds),
        slots=False,
    )
    sweep = first_pass(stack)
    # The first pass wrote every mailbox's mark: autovacuum's analyze would see a change of
    # every row within its naptime, so PostgreSQL plans with the marks as they now are.
    vacuum_analyze(stack.db.url)
    catch_up = caught_up(stack)
    time.sleep(WARMUP_SECONDS)
    sendwell = stack.pids("server") + stack.pids("worker")
    database = stack.database_pids()
    reads_before = stack.counts().get("inbox_ok", 0)
    cpu_before, db_before = cpu_seconds(sendwell), cpu_seconds(database)
    began = time.monotonic()
    while time.monotonic() - began < profile.quiet_window_seconds:
        stack.procs.check()
        time.sleep(1)
    elapsed = time.monotonic() - began
    cpu_after, db_after = cpu_seconds(sendwell), cpu_seconds(database)
    reads = stack.counts().get("inbox_ok", 0) - reads_before

    def busy(after: dict[int, float], before: dict[int, float]) -> float:
        return sum(after[p] - before.get(p, 0.0) for p in after) / elapsed

    return (
        sweep,
        catch_up,
        reads / elapsed,
        busy(cpu_after, cpu_before),
        busy(db_after, db_before),
    )


def run(profile: Profile, lab: Lab) -> Section:
    default = Settings.model_fields["inbound_quiet_poll_seconds"].default
    every = Settings.model_fields["inbound_poll_seconds"].default
    count = profile.quiet_mailboxes
    results: dict[str, tuple[float, float, float, float, float]] = {}
    for name, quiet in (("quiet-schedule", default), ("quiet-every-minute", every)):
        stack = lab.stack(
            name,
            "postgresql",
            dispatcher=False,
            workers=2,
            SENDWELL_INBOUND_QUIET_POLL_SECONDS=f"{quiet:g}",
        )
        try:
            results[name] = measure(stack, profile, quiet)
        finally:
            lab.close(name)
    figures: list[Figure] = []
    for name, label, quiet in (
        ("quiet-schedule", f"(a) default schedule (quiet inboxes every {default:g} s)", default),
        ("quiet-every-minute", f"(b) every inbox every {every:g} s (before)", every),
    ):
        sweep, catch_up, reads, cpu, db = results[name]
        figures += [
            Figure(
                GROUP,
                f"{label}: first pass over the fleet",
                "s",
                [sweep],
                note="from the start until every mailbox was found quiet once",
            ),
            Figure(
                GROUP,
                f"{label}: reads caught up after the first pass",
                "s",
                [catch_up],
                note=f"until no inbox read was more than 5 s overdue (at most {CATCH_UP_LIMIT} s)",
            ),
            Figure(
                GROUP,
                f"{label}: inbox reads",
                "reads/s",
                [reads],
                versus=f"{ratio(reads, count / quiet):.2f}x the schedule's {count / quiet:.1f}/s",
            ),
            Figure(
                GROUP,
                f"{label}: Sendwell CPU busy",
                "cores",
                [cpu],
                digits=2,
                note="user + system time of both workers and serve over the window",
            ),
            Figure(GROUP, f"{label}: PostgreSQL CPU busy", "cores", [db], digits=2),
        ]
    (*_, quiet_cpu, quiet_db), (*_, every_cpu, every_db) = (
        results["quiet-schedule"],
        results["quiet-every-minute"],
    )
    figures.append(
        Figure(
            GROUP,
            "Sendwell + PostgreSQL CPU, default schedule / every minute",
            "x",
            [ratio(quiet_cpu + quiet_db, every_cpu + every_db)],
            digits=2,
        )
    )
    return Section(
        GROUP,
        f"{count:,} sandbox Gmail mailboxes, each with a running one-step campaign whose "
        "recipient is due tomorrow, on PostgreSQL with two `sendwell worker`, set up as a fleet "
        "quiet for a while (each inbox last read at a moment drawn in its quiet interval, each "
        "campaign started a day before). Once the workers have found every mailbox quiet "
        "(the first pass), the database analyzed as autovacuum would after that change of "
        "every mark, the reads that fell due meanwhile made, "
        f"and {WARMUP_SECONDS} s more, inbox reads (Gmail history.list "
        f"calls the sandbox answered) and CPU are counted over "
        f"{profile.quiet_window_seconds} s; the two schedules run one after the other on the "
        "same machine.",
        figures,
    )
