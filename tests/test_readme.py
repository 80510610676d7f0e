"""The README documents every setting and keeps the quickstart to its two commands."""

from __future__ import annotations

from pathlib import Path

from sendwell.config import ENV_PREFIX, Settings


def test_every_setting_is_in_the_readme(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in readme
    ]
    assert missing == []


def test_quickstart_has_exactly_two_commands(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quickstart.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]
