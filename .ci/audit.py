"""`make audit`: pip-audit over requirements.lock, judged the way the project needs.

Fails when a pinned package has a known vulnerability with a fixed release (upgrade the pin),
and when any pin could not be checked at all: an audit that checked nothing must not pass.
Vulnerabilities without a fix are listed but do not fail the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

COMMAND = [
    sys.executable,
    "-m",
    "pip_audit",
    "--requirement",
    "requirements.lock",
    "--no-deps",
    "--disable-pip",
    "--progress-spinner",
    "off",
    "--format",
    "json",
]


def main() -> int:
    result = subprocess.run(COMMAND, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        _say(f"pip-audit did not produce a report:\n{result.stderr}")
        return 1
    dependencies = report["dependencies"]
    unchecked = [d for d in dependencies if "skip_reason" in d]
    fixable, unfixed = [], []
    for dependency in dependencies:
        for vuln in dependency.get("vulns", []):
            line = f"{dependency['name']} {dependency['version']}: {vuln['id']}"
            if vuln["fix_versions"]:
                fixable.append(f"{line}, fixed in {', '.join(vuln['fix_versions'])}")
            else:
                unfixed.append(f"{line}, no fixed release yet")
    for line in unfixed:
        _say(f"known, no fix yet: {line}")
    for line in fixable:
        _say(f"upgrade: {line}")
    if unchecked:
        _say(
            f"{len(unchecked)} of {len(dependencies)} pins could not be checked, e.g. "
            f"{unchecked[0]['skip_reason']}. The vulnerability service (PyPI's JSON API) must "
            "be reachable; see docs/security.md."
        )
        return 1
    if fixable:
        return 1
    _say(f"{len(dependencies)} pins checked, none with a fixable known vulnerability")
    return 0


def _say(line: str) -> None:
    sys.stderr.write(f"audit: {line}\n")


if __name__ == "__main__":
    sys.exit(main())
