"""1. Send throughput with pacing off, against anchors doing the same work on the same machine.

Each run links a fresh sandbox mailbox (minimum gap 0, start delay 0), starts a one-step
campaign of N recipients through the API and waits until all N arrived in the sandbox. The
rate is taken from the sandbox's own arrival times: (N - 1) / (last - first).

Anchors, measured in the same run and interleaved with Sendwell's PostgreSQL runs: the rig's
limit (a bare client posting pre-built messages to the same sandbox), a peer (a procrastinate
task per message doing the same work, `bench/peer_jobs.py`) and, for reference, procrastinate
running no-op jobs.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import peer_jobs
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

# The rig's limit: connections posting at once, one per Sendwell worker.
RIG_CONNECTIONS = 2

GROUP = "1. Send throughput"


def start_workers(procs: Processes, name: str, app: str, dsn: str, env: dict[str, str]) -> None:
    """Two procrastinate workers of concurrency 1 running `app`, waited for until both have
    registered in the queue's database."""
    for index in (1, 2):
        procs.start(
            f"{name}-{index}",
            ["-m", "procrastinate", f"--app={app}", "worker", "--concurrency=1"],
            {**os.environ, **env},
            cwd=ROOT,
        )
    with psycopg.connect(dsn, autocommit=True) as connection:
        wait_until(
            lambda: _count(connection, "SELECT count(*) FROM procrastinate_workers") >= 2,
            90,
            f"{name} workers",
            procs,
            step=0.2,
        )


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
        start_workers(procs, "procrastinate", "bench.noop_jobs.app", dsn, {DSN_VARIABLE: dsn})

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


def granted(stack: Stack, address: str) -> str:
    """An access token of Sendwell's client for a sandbox Gmail mailbox."""
    answer = httpx.post(
        f"http://127.0.0.1:{stack.sandbox_port}/bench/grants",
        json={"addresses": [address]},
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()[0]["access_token"]
    return token


def arrival_rate(stack: Stack, address: str, total: int, procs: Processes) -> float:
    """(N - 1) / (last - first) of a mailbox's arrivals, once all `total` are in."""
    wait_until(
        lambda: len(stack.sent(address)) >= total,
        60 + total,
        f"{total} messages from {address}",
        procs,
        step=0.5,
    )
    sent = stack.sent(address)
    if len(sent) != total or distinct_tags(sent) != total:
        raise BenchError(f"{address}: {len(sent)} messages, {distinct_tags(sent)} distinct")
    moments = sorted(parse_moment(m["sent_at"]) for m in sent)
    return ratio(len(moments) - 1, moments[-1] - moments[0])


def rig_limit(stack: Stack, label: str, messages: int) -> float:
    """Pre-built messages posted to Gmail's messages.send as fast as RIG_CONNECTIONS
    keep-alive connections can: the most this machine's sandbox accepts."""
    address = f"rig-{label}@gmail.test"
    headers = {"Authorization": f"Bearer {granted(stack, address)}"}
    bodies = [
        {
            "raw": base64.urlsafe_b64encode(
                peer_jobs.build(address, f"r{i}@example.com", f"R{i}", uuid.uuid4().hex)
            ).decode()
        }
        for i in range(messages)
    ]

    def post(share: list[dict[str, str]]) -> None:
        with httpx.Client(base_url=stack.sandbox_url, timeout=30) as client:
            for body in share:
                client.post(
                    "/google/gmail/v1/users/me/messages/send", json=body, headers=headers
                ).raise_for_status()

    threads = [
        threading.Thread(target=post, args=(bodies[k::RIG_CONNECTIONS],))
        for k in range(RIG_CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return arrival_rate(stack, address, messages, stack.procs)


class Peer:
    """Two procrastinate workers (concurrency 1 each, like our two workers) running a send
    task per message against the same sandbox, on their own database of the same server."""

    def __init__(self, dsn: str, stack: Stack, procs: Processes) -> None:
        self.dsn = dsn
        self.stack = stack
        self.app = peer_jobs.make_app(dsn)
        self.procs = procs
        with self.app.open():
            self.app.schema_manager.apply_schema()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(peer_jobs.LEDGER)
        env = {
            peer_jobs.DSN_VARIABLE: dsn,
            peer_jobs.SANDBOX_VARIABLE: stack.sandbox_url,
        }
        start_workers(self.procs, "peer", "bench.peer_jobs.app", dsn, env)

    def run(self, label: str, messages: int) -> float:
        """Messages per second from the sandbox's arrivals, as for Sendwell."""
        address = f"peer-{label}@gmail.test"
        token = granted(self.stack, address)
        jobs: list[dict[str, Any]] = [
            {
                "sender": address,
                "token": token,
                "recipient": f"p{i}@example.com",
                "first_name": f"P{i}",
                "tag": uuid.uuid4().hex,
            }
            for i in range(messages)
        ]
        with self.app.open():
            self.app.tasks[peer_jobs.TASK].batch_defer(*jobs)
        rate = arrival_rate(self.stack, address, messages, self.procs)
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            recorded = _count(connection, "SELECT count(*) FROM peer_ledger")
        if recorded < messages:
            raise BenchError(f"the peer recorded {recorded} of {messages} sends")
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("TRUNCATE peer_ledger")
        return rate


@contextmanager
def peer(folder: Path, stack: Stack) -> Iterator[Peer]:
    folder.mkdir(parents=True, exist_ok=True)
    procs = Processes(folder)
    with postgres_database("sendwell_bench_peer") as url:
        try:
            yield Peer(conninfo(url), stack, procs)
        finally:
            procs.stop_all()


def run(profile: Profile, lab: Lab) -> Section:
    n = profile.send_messages
    sqlite = lab.sqlite_serve()
    sqlite_runs = [send_run(sqlite, f"sqlite-{index}", n) for index in range(profile.repeats)]
    postgres = lab.postgres_workers()
    postgres_runs, spread_runs, anchor_rates, rig_rates, peer_rates = [], [], [], [], []
    with anchor(lab.folder / "anchor") as noop, peer(lab.folder / "peer", postgres) as same:
        # Interleaved, so every side sees the same background load.
        for index in range(profile.repeats):
            postgres_runs.append(send_run(postgres, f"postgres-{index}", n))
            rig_rates.append(rig_limit(postgres, str(index), n))
            peer_rates.append(same.run(str(index), n))
            anchor_rates.append(noop.run(profile.anchor_jobs))
            spread_runs.append(send_run(postgres, f"postgres-two-{index}", n, mailboxes=2))
    rig_figure = Figure(
        GROUP,
        f"rig's limit: pre-built messages posted to messages.send over {RIG_CONNECTIONS} "
        "keep-alive connections",
        "msg/s",
        rig_rates,
        note=f"{n:,} messages per run, one HTTP request each (Sendwell makes two)",
    )
    peer_figure = Figure(
        GROUP,
        "peer: procrastinate task per message (render, MIME, send, read Message-ID back, "
        "ledger row), 2 workers x concurrency 1",
        "msg/s",
        peer_rates,
        note=f"{n:,} messages per run; `bench/peer_jobs.py`",
    )
    anchor_figure = Figure(
        GROUP,
        "reference: procrastinate, 2 workers x concurrency 1, no-op jobs (PostgreSQL)",
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
        median = Figure(GROUP, "", "", rates).value
        to_peer, to_rig = ratio(median, peer_figure.value), ratio(median, rig_figure.value)
        figures.append(
            Figure(
                GROUP,
                name,
                "msg/s",
                rates,
                target="≥ 1.5x peer, ≥ 0.5x rig",
                met=to_peer >= 1.5 and to_rig >= 0.5,
                versus=f"{to_peer:.2f}x peer, {to_rig:.2f}x rig, "
                f"{ratio(median, anchor_figure.value):.2f}x no-op",
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
        "arrival) in the sandbox. The anchors run in the same benchmark run, interleaved with "
        "(b) and (b'): the rig's limit and the peer send to the same sandbox process as (b) "
        "and are measured the same way, from the sandbox's arrivals; the peer and the no-op "
        "reference use their own databases of the same PostgreSQL server, the no-op rate "
        "comes from procrastinate's events table (first start to last success). Ratios are "
        "of medians. CPU per message: user + system time "
        "of each role's processes (/proc) from the start request to the last arrival, "
        "divided by N. One worker at a time sends for a mailbox (its sender lease), so (b) "
        "measures one worker's pipeline with a second one standing by, and (b') the two "
        "workers sending for a mailbox each.",
        [*figures, rig_figure, peer_figure, anchor_figure, *cpu_figures],
        notes=[f"Delivery problem: {problem}" for problem in problems],
    )


def _count(connection: psycopg.Connection[Any], query: str) -> int:
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0
