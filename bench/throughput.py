"""1. Send throughput with pacing off, against procrastinate's no-op rate on the same server.

Each run links a fresh sandbox mailbox (minimum gap 0, start delay 0), starts a one-step
campaign of N recipients through the API and waits until all N arrived in the sandbox. The
rate is taken from the sandbox's own arrival times: (N - 1) / (last - first).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.common import ROOT, BenchError, Figure, Profile, Section, ratio
from bench.noop_jobs import DSN_VARIABLE, TASK, make_app
from bench.stack import (
    Lab,
    Processes,
    Stack,
    conninfo,
    cpu_seconds,
    distinct_tags,
    parse_moment,
    postgres_database,
    wait_until,
)

GROUP = "1. Send throughput"


@dataclass
class SendRun:
    rate: float
    cpu_ms: dict[str, float]
    problem: str


def cpu_by_role(stack: Stack) -> dict[str, dict[int, float]]:
    return {
        "Sendwell processes": cpu_seconds(stack.pids("server") + stack.pids("worker")),
        "sandbox": cpu_seconds(stack.pids("sandbox")),
        "PostgreSQL backends": cpu_seconds(stack.database_pids()),
    }


def send_run(stack: Stack, label: str, messages: int, mailboxes: int = 1) -> SendRun:
    """Messages per second for `messages` recipients split over one campaign per mailbox,
    the CPU each role spent per message meanwhile, and any problem seen."""
    addresses = [f"throughput-{label}-{index}@gmail.test" for index in range(mailboxes)]
    campaigns = [
        stack.campaign(stack.link(address), messages // mailboxes, start=False)
        for address in addresses
    ]
    total = messages // mailboxes * mailboxes

    def arrived() -> list[dict[str, Any]]:
        return [message for address in addresses for message in stack.sent(address)]

    before = cpu_by_role(stack)
    for campaign_id in campaigns:
        stack.call("POST", f"/campaigns/{campaign_id}/start")
    wait_until(
        lambda: len(arrived()) >= total,
        60 + total,
        f"{total} messages from {', '.join(addresses)}",
        stack.procs,
        step=0.5,
    )
    after = cpu_by_role(stack)
    cpu_ms = {
        role: 1000
        * sum(used - before[role].get(pid, 0.0) for pid, used in after[role].items())
        / total
        for role in after
    }
    time.sleep(0.5)  # anything extra (a duplicate) would show up now
    sent = arrived()
    moments = sorted(parse_moment(m["sent_at"]) for m in sent)
    problem = ""
    if len(sent) != total or distinct_tags(sent) != total:
        problem = f"{label}: {len(sent)} messages, {distinct_tags(sent)} distinct, {total} due"
    return SendRun(ratio(len(moments) - 1, moments[-1] - moments[0]), cpu_ms, problem)


class Anchor:
    """Two procrastinate workers (concurrency 1 each, like our two workers) on their own
    database of the same PostgreSQL server."""

    def __init__(self, dsn: str, procs: Processes) -> None:
        self.dsn = dsn
        self.app = make_app(dsn)
        self.procs = procs
        with self.app.open():
            self.app.schema_manager.apply_schema()
        env = {**os.environ, DSN_VARIABLE: dsn}
        for index in (1, 2):
            self.procs.start(
                f"procrastinate-{index}",
                ["-m", "procrastinate", "--app=bench.noop_jobs.app", "worker", "--concurrency=1"],
                env,
                cwd=ROOT,
            )
        with psycopg.connect(dsn, autocommit=True) as connection:
            wait_until(
                lambda: _count(connection, "SELECT count(*) FROM procrastinate_workers") >= 2,
                90,
                "procrastinate workers",
                self.procs,
                step=0.2,
            )

    def run(self, jobs: int) -> float:
        """No-op jobs per second, from procrastinate's own events: first start to last end."""
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")
            with self.app.open():
                self.app.tasks[TASK].batch_defer(*({} for _ in range(jobs)))
            wait_until(
                lambda: (
                    _count(
                        connection,
                        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
                    )
                    >= jobs
                ),
                60 + jobs / 5,
                f"{jobs} no-op jobs",
                self.procs,
                step=0.2,
            )
            row = connection.execute(
                "SELECT min(at) FILTER (WHERE type = 'started'), "
                "max(at) FILTER (WHERE type = 'succeeded') FROM procrastinate_events"
            ).fetchone()
        if row is None or row[0] is None:
            raise BenchError("procrastinate recorded no events")
        return ratio(jobs - 1, (row[1] - row[0]).total_seconds())


@contextmanager
def anchor(folder: Path) -> Iterator[Anchor]:
    folder.mkdir(parents=True, exist_ok=True)
    procs = Processes(folder)
    with postgres_database("sendwell_bench_anchor") as url:
        try:
            yield Anchor(conninfo(url), procs)
        finally:
            procs.stop_all()


def run(profile: Profile, lab: Lab) -> Section:
    n = profile.send_messages
    sqlite = lab.sqlite_serve()
    sqlite_runs = [send_run(sqlite, f"sqlite-{index}", n) for index in range(profile.repeats)]
    postgres = lab.postgres_workers()
    postgres_runs, spread_runs, anchor_rates = [], [], []
    with anchor(lab.folder / "anchor") as noop:
        # Interleaved, so both sides see the same background load.
        for index in range(profile.repeats):
            postgres_runs.append(send_run(postgres, f"postgres-{index}", n))
            anchor_rates.append(noop.run(profile.anchor_jobs))
            spread_runs.append(send_run(postgres, f"postgres-two-{index}", n, mailboxes=2))
    anchor_figure = Figure(
        GROUP,
        "anchor: procrastinate 3.10.0, 2 workers x concurrency 1, no-op jobs (PostgreSQL)",
        "jobs/s",
        anchor_rates,
        note=f"{profile.anchor_jobs:,} jobs per run",
    )
    figures, cpu_figures = [], []
    for name, runs, where in (
        ("(a) one `sendwell serve` on SQLite", sqlite_runs, "one mailbox"),
        ("(b) two `sendwell worker` on PostgreSQL", postgres_runs, "one mailbox"),
        (
            "(b') two `sendwell worker` on PostgreSQL, two mailboxes",
            spread_runs,
            "two mailboxes, half each",
        ),
    ):
        rates = [run.rate for run in runs]
        share = ratio(Figure(GROUP, "", "", rates).value, anchor_figure.value)
        figures.append(
            Figure(
                GROUP,
                name,
                "msg/s",
                rates,
                target="≥ 3x anchor",
                met=share >= 3,
                versus=f"{share:.2f}x anchor",
                note=f"{n:,} messages per run, {where}",
            )
        )
        for role in runs[0].cpu_ms:
            spent = [run.cpu_ms[role] for run in runs]
            if any(spent):
                cpu_figures.append(Figure(GROUP, f"{name}: CPU per message, {role}", "ms", spent))
    problems = [run.problem for run in sqlite_runs + postgres_runs + spread_runs if run.problem]
    return Section(
        GROUP,
        f"A one-step campaign of {n:,} recipients per run through one freshly linked sandbox "
        "mailbox, pacing off (minimum gap 0, start delay 0). Rate = (N - 1) / (last - first "
        "arrival) in the sandbox. The anchor runs in the same benchmark run, interleaved with "
        "(b), on its own database of the same PostgreSQL server; its rate comes from its own "
        "events table (first start to last success). CPU per message: user + system time "
        "of each role's processes (/proc) from the start request to the last arrival, "
        "divided by N. One worker at a time sends for a mailbox (its sender lease), so (b) "
        "measures one worker's pipeline with a second one standing by, and (b') the two "
        "workers sending for a mailbox each.",
        [*figures, anchor_figure, *cpu_figures],
        notes=[f"Delivery problem: {problem}" for problem in problems],
    )


def _count(connection: psycopg.Connection[Any], query: str) -> int:
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0
