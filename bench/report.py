"""The machine a run happened on, and the figures as a terminal table and as Markdown."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from bench.common import ROOT, Figure, Profile, Section
from bench.stack import AUTOVACUUM_NAPTIME, autovacuum_runs, postgres_version


@dataclass
class Machine:
    cpus: int
    cpu_model: str
    memory: str
    python: str
    postgres: str
    postgres_autovacuum: bool
    sqlite: str
    system: str
    commit: str
    started: datetime
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ticks_before: tuple[int, int] = (0, 0)
    own_before: float = 0.0
    busy_share: float = 0.0
    own_share: float = 0.0

    @classmethod
    def describe(cls) -> Machine:
        return cls(
            cpus=os.cpu_count() or 0,
            cpu_model=proc_field("/proc/cpuinfo", "model name"),
            memory=memory_total(),
            python=platform.python_version(),
            postgres=postgres_version(),
            postgres_autovacuum=autovacuum_runs(),
            sqlite=sqlite3.sqlite_version,
            system=f"{platform.system()} {platform.release()}",
            commit=git("rev-parse", "--short", "HEAD") or "unknown",
            started=datetime.now(UTC),
            load_before=os.getloadavg(),
            ticks_before=cpu_ticks(),
            own_before=own_cpu_seconds(),
        )

    def finish(self) -> None:
        """Load at the end, and how busy the CPUs were meanwhile: in all, and with our work
        (this process and every child it waited for; PostgreSQL's share is not ours)."""
        self.load_after = os.getloadavg()
        busy, total = (now - then for now, then in zip(cpu_ticks(), self.ticks_before, strict=True))
        own = own_cpu_seconds() - self.own_before
        self.busy_share = busy / total if total else 0.0
        self.own_share = own * os.sysconf("SC_CLK_TCK") / total if total else 0.0


def own_cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def memory_total() -> str:
    total = proc_field("/proc/meminfo", "MemTotal").split()[0]
    return f"{int(total) / 1024 / 1024:.1f} GiB" if total.isdigit() else "unknown"


def proc_field(path: str, name: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git(*args: str) -> str:
    """What a read-only git command printed in the project folder; empty when it could not run."""
    try:
        done = subprocess.run(  # noqa: S603 - read-only git query
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout.strip()


def verdict(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "met" if figure.met else "NOT met"


def terminal_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left", show_lines=False)
    for column in ("figure", "value", "min-max", "n", "target", "", "ratio"):
        table.add_column(column, overflow="fold")
    for figure in section.figures:
        table.add_row(
            figure.name,
            figure.headline,
            figure.spread,
            str(len(figure.values)),
            figure.target,
            verdict(figure),
            figure.versus,
        )
    return table


def markdown(sections: list[Section], machine: Machine, profile: Profile, seconds: float) -> str:
    command = "make bench FULL=1" if profile.full else "make bench"
    vacuum = (
        ""
        if machine.postgres_autovacuum
        else f"; autovacuum is off on this server, so each benchmark's database is vacuumed and "
        f"analyzed every {AUTOVACUUM_NAPTIME} s in its stead, and right after a bulk load"
    )
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (quick profile) or `make bench FULL=1` (large sizes); the code "
        "is in `bench/`. Every figure is measured on real processes over real HTTP: the "
        "sandbox providers on their own port, `sendwell serve` and `sendwell worker` as "
        "subprocesses, mailboxes linked through the sandbox's sign-in and consent pages. "
        "They are benchmarks, not tests: nothing asserts a timing.",
        "",
        "Each figure is the median (or the stated percentile / maximum) with the min-max over "
        "its runs or trials; *n* is their number. Ratios are against an anchor measured in "
        "the same run (or, where none applies, against the target).",
        "",
        f"This file: `{command}` at commit `{machine.commit}` on "
        f"{machine.started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes. "
        f"Sizes: {profile.send_messages:,} messages per throughput run and "
        f"{profile.anchor_jobs:,} anchor jobs, {profile.resume_trials} resume trials, "
        f"{profile.detection_trials} detection trials, enrollments "
        f"{', '.join(f'{size:,}' for size in profile.scale_sizes)}, "
        f"{profile.import_rows:,}-row import x {profile.import_repeats}, "
        f"{profile.paced_mailboxes:,} paced mailboxes at a {profile.paced_gap_seconds} s gap "
        f"({profile.paced_window_seconds} s measured after {profile.paced_warmup_seconds} s); "
        f"{profile.repeats} runs per figure unless *n* says otherwise.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPUs | {machine.cpus} x {machine.cpu_model} |",
        f"| memory | {machine.memory} |",
        f"| system | {machine.system} |",
        f"| Python | {machine.python} |",
        f"| PostgreSQL | {machine.postgres} (same machine, over TCP on 127.0.0.1{vacuum}) |",
        f"| SQLite | {machine.sqlite} (WAL) |",
        "",
        "## Load while measuring",
        "",
        f"This is a shared {machine.cpus}-core machine on which other engineers run test "
        "suites (pytest with workers, headless Chromium, `sendwell worker` subprocesses, "
        f"PostgreSQL). During this run the CPUs were {machine.busy_share:.0%} busy, "
        f"{machine.own_share:.0%} of their time spent by the benchmark's own processes and "
        f"the remaining {max(machine.busy_share - machine.own_share, 0):.0%} by everything "
        "else, including the PostgreSQL server working for both. Load average (1, 5, 15 "
        f"min): {_load(machine.load_before)} at the start, {_load(machine.load_after)} at "
        "the end. Absolute figures are therefore pessimistic and noisy; ratios whose two "
        "sides ran in the same minutes are the more telling numbers.",
        "",
    ]
    lines += ["## Results", ""]
    for section in sections:
        lines += [f"### {section.title}", "", section.method, ""]
        if section.figures:
            lines += [
                "| figure | value | min-max | n | target | | ratio | notes |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {f.name} | {f.headline} | {f.spread} | {len(f.values)} | {f.target} | "
                f"{verdict(f)} | {f.versus} | {f.note} |"
                for f in section.figures
            ]
            lines.append("")
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
    return "\n".join(lines)


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)
