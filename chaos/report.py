"""The machine a run happened on, and the results as a terminal table and as Markdown."""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.report import git, memory_total, proc_field
from rich.table import Table

from chaos.scenarios import Profile, Result


@dataclass
class Machine:
    cpus: int
    cpu_model: str
    memory: str
    system: str
    python: str
    sqlite: str
    commit: str
    started: datetime
    load_before: tuple[float, float, float]
    postgres: str = "not started"
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def describe(cls) -> Machine:
        return cls(
            cpus=os.cpu_count() or 0,
            cpu_model=proc_field("/proc/cpuinfo", "model name"),
            memory=memory_total(),
            system=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            sqlite=sqlite3.sqlite_version,
            commit=_commit(),
            started=datetime.now(UTC),
            load_before=os.getloadavg(),
        )


def _commit() -> str:
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " with local changes" if dirty else ""
    )


def counted(values: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in values.items() if n) or "none"


def verdict(result: Result) -> str:
    return "pass" if result.ok else "FAIL"


COLUMNS = (
    "scenario",
    "due",
    "sent",
    "lost",
    "duplicated",
    "kills",
    "failover p50 / p99 / max",
    "restarts",
    "faults injected",
    "time",
    "all completed",
    "",
)


def row(result: Result) -> list[str]:
    t = result.tally
    duplicated = f"{t.duplicated}" + (f" ({t.duplicated_tags} by tag)" if t.duplicated_tags else "")
    return [
        result.name,
        f"{t.due:,}",
        f"{t.sent:,}",
        str(t.lost),
        duplicated,
        str(result.kills),
        failover(result),
        counted(result.restarts),
        counted(result.faults),
        f"{result.seconds:.0f} s",
        "yes" if result.completed else "no",
        verdict(result),
    ]


def failover(result: Result) -> str:
    f = result.failover
    if not f.seconds:
        return "-"
    return f"{f.percentile(0.5):.1f} / {f.percentile(0.99):.1f} / {max(f.seconds):.1f} s"


def terminal_table(results: list[Result]) -> Table:
    table = Table(title="Sendwell reliability", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(*row(result))
    return table


def markdown(results: list[Result], machine: Machine, profile: Profile, seconds: float) -> str:
    command = "python -m chaos.run --quick" if profile.quick else "make chaos"
    lines = [
        "# Reliability",
        "",
        "Written by `make chaos` (the code is in `chaos/`; `tests/dispatch/test_chaos.py` is "
        "the short version the test suite runs). Every scenario runs real processes over "
        "real HTTP, as `make bench` does: the sandbox providers on their own port, `sendwell "
        "serve` and `sendwell worker` as subprocesses, mailboxes linked through the sandbox's "
        "sign-in and consent pages, campaigns made and steered through the JSON API. While "
        "campaigns send, processes are SIGKILLed and restarted, the database is cut or "
        "restarted and the sandbox fails sends on purpose; afterwards every campaign must be "
        "Completed and the sandbox's Sent folders are counted against what was due.",
        "",
        "- **due**: one message per (recipient, step) of every campaign.",
        "- **sent**: messages that arrived in the sandbox's Sent folders.",
        "- **lost**: a (recipient, step) that was due and never arrived, once every campaign "
        "is Completed. The goal is 0.",
        "- **duplicated**: arrivals beyond the first of one (recipient, step); the same count "
        "by Sendwell's `X-Sendwell-Send-Id` tag is shown when it is not 0 (messages whose "
        "host dropped the tag, as Exchange may, are counted by (recipient, step) only). The "
        "goal is 0.",
        "- **step**: every follow-up is a reply in its first email's thread, so a message's "
        "step is its place in the thread as the recipient received it: no In-Reply-To is "
        "step 1, and a follow-up is one more than the message its In-Reply-To names. A "
        "follow-up must also name a message sent to the same recipient, carry the whole "
        'thread in References and keep the thread\'s subject as "Re: …"; one that does '
        "not fails the scenario (the notes give how many follow-ups were checked).",
        "",
        "- **failover**: for every SIGKILL, the mailboxes whose sender lease the killed "
        "process held at that moment; for each, the time from the kill (or from when the "
        "mailbox's pacing allowed its next send, if later: a host's rate limit may hold it) "
        "to the next message from that mailbox that arrived in the sandbox and that another "
        "worker sent (the "
        "ledger names the worker of each (recipient, step)). Nearest-rank p50 / p99 and the "
        "maximum over all kills of the scenario. A dead worker's liveness lock is freed when "
        "its process dies (`src/sendwell/dispatch/liveness.py`), so others take its mailboxes "
        "and claims over at once rather than when their lease ends. On SQLite the one "
        "`sendwell serve` is restarted by the rig, so there the time includes that restart. "
        "The goal for workers is p99 ≤ 2 s. The notes also give **taken over**: from the "
        "kill to the `workers_gone` log line of the worker that took each such mailbox over. "
        "Where the next send comes much later than that, it waited for something other than "
        "the takeover: in scenarios 3 and 5 a fault is queued right before each kill and "
        "more every 0.3-1.2 s, so the first sends after a takeover may fail (a 3 s timeout, "
        "a refusal) and arrive nowhere; and a mailbox whose only due step is the follow-up "
        "of a send the dead worker had in flight waits until that send is settled (at once "
        "when its copy is already in Sent, else when its lease ends).",
        "",
        "Settings: `SENDWELL_PROVIDER_TIMEOUT_SECONDS=3` (so a lease, twice that plus 30 s, "
        "is 36 s: what a dead worker had handed to a host is looked for in Sent when it is "
        "taken over, and if not found there yet, again once the lease ends), "
        "`SENDWELL_SETTLE_GRACE_SECONDS=5`, pacing off (minimum gap 0), each "
        "campaign's steps due one after the other with no delay.",
        "",
        "PostgreSQL scenarios run on a **private cluster** made for the run (`initdb` into a "
        "temporary folder as the `postgres` OS user, trust authentication, listening on "
        "127.0.0.1 only at a free port, `fsync=off` as nothing here survives an OS crash), so "
        "restarting it cannot disturb anyone else's databases. Its restart is `pg_ctl "
        "restart` in the default fast mode: every connection is cut and the server starts "
        "again, which is what `pg_ctlcluster 15 main restart` does to a packaged cluster. "
        "`pg_terminate_backend` is only aimed at backends of the scenario's own database.",
        "",
        f"This file: `{command}` at commit `{machine.commit}` on "
        f"{machine.started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes in all.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPUs | {machine.cpus} x {machine.cpu_model} |",
        f"| memory | {machine.memory} |",
        f"| system | {machine.system} |",
        f"| Python | {machine.python} |",
        f"| PostgreSQL | {machine.postgres} (private cluster, TCP on 127.0.0.1) |",
        f"| SQLite | {machine.sqlite} (WAL) |",
        f"| load average (1, 5, 15 min) | {_load(machine.load_before)} at the start, "
        f"{_load(machine.load_after)} at the end |",
        "",
        "The machine is shared with other engineers' test suites, so times are pessimistic.",
        "",
        "## Results",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    lines.append("")
    for result in results:
        lines += [f"### {result.name}", "", f"{result.backend}. {result.method}", ""]
        lines += [f"- {note}" for note in result.notes]
        lines += [f"- **Problem:** {problem}" for problem in result.problems]
        if result.notes or result.problems:
            lines.append("")
    return "\n".join(lines)


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)
