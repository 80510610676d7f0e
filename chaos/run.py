"""Run the reliability scenarios, print their figures, write docs/reliability.md.

python -m chaos.run              every scenario at full size (what `make chaos` runs)
python -m chaos.run --quick      smaller sizes, fewer kills; docs/reliability.md is left alone
python -m chaos.run --only kills --only hammer
                                 some scenarios only; docs/reliability.md is then left alone
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.common import ROOT, BenchError
from rich.console import Console

from chaos.cluster import Cluster, private_cluster
from chaos.report import Machine, markdown, terminal_table
from chaos.scenarios import (
    Profile,
    Result,
    faults_and_relink,
    microsoft_only,
    pause_resume_hammer,
    postgres_kills,
    sqlite_serve_kills,
)

SCENARIOS = ("kills", "serve", "faults", "hammer", "microsoft")
DOC = ROOT / "docs" / "reliability.md"
# What the runs found and what was changed because of it: written by hand, appended.
FINDINGS = ROOT / "chaos" / "findings.md"
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=SCENARIOS, default=[])
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    profile = Profile.short() if args.quick else Profile.full()
    chosen = args.only or list(SCENARIOS)
    machine = Machine.describe()
    console.print(
        f"Sendwell reliability, {'quick' if profile.quick else 'full'} run, seed {args.seed}: "
        f"{machine.cpus} CPUs, load average {machine.load_before[0]:.2f}.",
        highlight=False,
    )
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sendwell-chaos-") as temporary, ExitStack() as exits:
        folder = Path(temporary)
        cluster: Cluster | None = None

        def postgres() -> Cluster:
            nonlocal cluster
            if cluster is None:
                cluster = exits.enter_context(private_cluster())
                machine.postgres = cluster.version()
            return cluster

        runs: dict[str, Callable[[], Result]] = {
            "kills": lambda: postgres_kills(profile, postgres(), folder / "kills", args.seed),
            "serve": lambda: sqlite_serve_kills(profile, folder / "serve", args.seed + 1),
            "faults": lambda: faults_and_relink(
                profile, postgres(), folder / "faults", args.seed + 2
            ),
            "hammer": lambda: pause_resume_hammer(
                profile, postgres(), folder / "hammer", args.seed + 3
            ),
            "microsoft": lambda: microsoft_only(
                profile, postgres(), folder / "microsoft", args.seed + 4
            ),
        }
        for name in chosen:
            began = time.monotonic()
            console.print(f"\n[bold]{name}[/] …", highlight=False)
            result = attempt(name, runs[name], began)
            console.print(terminal_table([result]))
            for note in result.notes:
                console.print(f"  note: {note}", highlight=False)
            for problem in result.problems:
                console.print(f"  [red]problem:[/] {problem}", highlight=False)
            results.append(result)
    machine.load_after = os.getloadavg()
    seconds = time.monotonic() - started
    console.print()
    console.print(terminal_table(results))
    console.print(f"Done in {seconds / 60:.1f} min.", highlight=False)
    if not args.only and not profile.quick:
        findings = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else ""
        report = markdown(results, machine, profile, seconds)
        DOC.write_text(report + "\n" + ("\n" + findings if findings else ""), encoding="utf-8")
        console.print(f"Wrote {DOC.relative_to(ROOT)}.", highlight=False)
    return 0 if all(result.ok for result in results) else 1


def attempt(name: str, run: Callable[[], Result], began: float) -> Result:
    """A scenario's result; one that could not run says why instead of stopping the others."""
    try:
        return run()
    except (BenchError, OSError, RuntimeError) as error:
        result = Result(name, "", "", seconds=time.monotonic() - began)
        result.problems.append(f"Not run to the end: {error}")
        return result


if __name__ == "__main__":
    raise SystemExit(main())
