"""`make run` installs the product alone; `make test` and `make lint` add the development tools."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

DEV_TOOLS = ("playwright", "mypy", "schemathesis", "hypothesis", "pytest", "ruff")


def planned(project_root: Path, folder: Path, target: str) -> str:
    """What `make <target>` would run on a fresh checkout (no .venv yet), without running it."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed (apt-get install make)")
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(project_root / name, folder / name)
    result = subprocess.run(
        ["make", "-n", target], cwd=folder, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout


def test_make_run_installs_only_what_the_product_needs(project_root: Path, tmp_path: Path) -> None:
    commands = planned(project_root, tmp_path, "run")
    installs = [line for line in commands.splitlines() if " -m pip install" in line]
    assert installs, commands
    assert not [line for line in installs if "[dev" in line], installs
    assert "-e ." in installs[-1]
    assert "sendwell serve" in commands
    dependencies = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    product = " ".join(dependencies["dependencies"]).lower()
    assert [tool for tool in DEV_TOOLS if tool in product] == []


@pytest.mark.parametrize("target", ["test", "lint"])
def test_tests_and_linters_still_get_the_development_tools(
    project_root: Path, tmp_path: Path, target: str
) -> None:
    commands = planned(project_root, tmp_path, target)
    assert "-e '.[dev]'" in commands
    # The product is installed first, the same way as for `make run`.
    assert commands.index("-e .\n") < commands.index("-e '.[dev]'")
