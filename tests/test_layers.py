"""Route modules translate a request into service calls; they never end a unit of work.

The request's dependency (`sendwell.web.deps.get_db`) commits when the route returns and
rolls back when it raises. Work that must follow a commit (wait for the sending engine's
in-flight sends, look a domain up in sessions of its own) belongs to a service function
that says so (`sendwell.db.commit_then`); a refused save that a page answers by showing its
form again is undone to a savepoint (`sendwell.db.all_or_nothing`)."""

from __future__ import annotations

import ast
from pathlib import Path

ENDS_A_UNIT = frozenset({"commit", "rollback"})


def is_route_module(path: Path) -> bool:
    return path.stem in ("web", "api") or path.stem.endswith(("_web", "_api"))


def unit_endings(path: Path) -> list[str]:
    """Each `<anything>.commit()` or `.rollback()` call in the module, as `file:line`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.name}:{node.lineno} {node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ENDS_A_UNIT
    ]


def route_modules_ending_units(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root).parent}/{found}"
        for path in sorted(root.rglob("*.py"))
        if is_route_module(path)
        for found in unit_endings(path)
    ]


def test_no_route_module_commits_or_rolls_back(project_root: Path) -> None:
    assert route_modules_ending_units(project_root / "src" / "sendwell") == []


def test_a_planted_commit_or_rollback_fails(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    (root / "feature").mkdir(parents=True)
    (root / "feature" / "service.py").write_text("def save(db):\n    db.commit()\n")
    (root / "feature" / "web.py").write_text("def page(db):\n    return 1\n")
    assert route_modules_ending_units(root) == []
    (root / "feature" / "import_web.py").write_text(
        "def page(db):\n    try:\n        pass\n    except ValueError:\n        db.rollback()\n"
    )
    (root / "feature" / "api.py").write_text("def route(request, db):\n    db.commit()\n")
    assert route_modules_ending_units(root) == [
        "feature/api.py:2 commit()",
        "feature/import_web.py:5 rollback()",
    ]
