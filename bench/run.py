"""Run the benchmarks, print their figures, write docs/benchmarks.md.

python -m bench.run            quick profile (what `make bench` runs)
python -m bench.run --full     large sizes (`make bench FULL=1`; FULL=1 in the
                               environment does the same)
python -m bench.run --only resume --only claim
                               some benchmarks only; docs/benchmarks.md is then left alone
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench import (
    campaigns_tab,
    claim,
    detection,
    importing,
    paced,
    pause,
    quiet,
    resume,
    throughput,
)
from bench.common import ROOT, BenchError, Benchmark, Profile, Section
from bench.report import Machine, markdown, terminal_table
from bench.stack import Lab
from sendwell import wiring

BENCHMARKS: dict[str, Benchmark] = {
    "throughput": throughput.run,
    "resume": resume.run,
    "detection": detection.run,
    "claim": claim.run,
    "pause": pause.run,
    "import": importing.run,
    "tab": campaigns_tab.run,
    "paced": paced.run,
    "quiet": quiet.run,
}
# These share the long-lived SQLite and PostgreSQL stacks; later ones start their own.
SHARED_STACKS = {"throughput", "resume", "detection"}
DOC = ROOT / "docs" / "benchmarks.md"
# What the figures meant and what was changed because of them: written by hand, appended.
FINDINGS = ROOT / "bench" / "findings.md"
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 150)


def full_from_environment() -> bool:
    return os.environ.get("FULL", "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--full", action="store_true", default=full_from_environment())
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), default=[])
    args = parser.parse_args(argv)
    wiring.register()  # the benchmarks call services directly, as the app would
    profile = Profile.large() if args.full else Profile.quick()
    chosen = args.only or list(BENCHMARKS)
    machine = Machine.describe()
    console.print(
        f"Sendwell benchmarks, {'full' if profile.full else 'quick'} profile: "
        f"{machine.cpus} CPUs, Python {machine.python}, PostgreSQL {machine.postgres}, "
        f"SQLite {machine.sqlite}; load average {machine.load_before[0]:.2f}.",
        highlight=False,
    )
    sections: list[Section] = []
    failed = False
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sendwell-bench-") as folder:
        lab = Lab(Path(folder))
        try:
            for position, name in enumerate(chosen):
                if not SHARED_STACKS & set(chosen[position:]):
                    lab.close_all()
                began = time.monotonic()
                console.print(f"\n[bold]{name}[/] …", highlight=False)
                section = measure(name, BENCHMARKS[name], profile, lab)
                failed = failed or any(n.startswith("Not measured") for n in section.notes)
                console.print(terminal_table(section))
                for note in section.notes:
                    console.print(f"  note: {note}", highlight=False)
                console.print(f"  ({time.monotonic() - began:.0f} s)", highlight=False)
                sections.append(section)
        finally:
            lab.close_all()
    machine.finish()
    seconds = time.monotonic() - started
    console.print(f"\nDone in {seconds / 60:.1f} min.", highlight=False)
    if not args.only:
        findings = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else ""
        report = markdown(sections, machine, profile, seconds)
        DOC.write_text(report + "\n" + ("\n" + findings if findings else ""), encoding="utf-8")
        console.print(f"Wrote {DOC.relative_to(ROOT)}.", highlight=False)
    return 1 if failed else 0


def measure(name: str, benchmark: Benchmark, profile: Profile, lab: Lab) -> Section:
    """A benchmark's section; one that cannot be measured says why instead of stopping
    the others."""
    try:
        return benchmark(profile, lab)
    except (BenchError, OSError, RuntimeError) as error:
        return Section(name, "", notes=[f"Not measured: {error}"])


if __name__ == "__main__":
    raise SystemExit(main())
