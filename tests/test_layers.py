"""Two rules of the layers that the import-direction test does not see.

**Every query lives in a repository**: no module outside a feature's `repository.py` (or
`*_repository.py`) builds a SQL statement with SQLAlchemy's `select`, `update`, `delete` or
`insert` (the dialects' `insert` included), however it was imported or renamed.
Outside the rule: `migrations` (the schema's own history), `models` (column defaults and
table definitions), `sandbox` (an emulated host with its own store), and `bench`, `chaos`
and `tour`, which are not in the package. A statement built in a service, a page or the
engine means a query a reader cannot find where queries live. `KNOWN_QUERIES` lists the
modules that still build queries, each with why; the test fails on any other, and on an entry
that no longer builds one (so the list only shrinks).

**Route modules never end a unit of work**: the request's dependency
(`sendwell.web.deps.get_db`) commits when the route returns and rolls back when it raises.
Work that must follow a commit (wait for the sending engine's in-flight sends, look a domain
up in sessions of its own) belongs to a service function that says so
(`sendwell.db.commit_then`); a refused save that a page answers by showing its form again is
undone to a savepoint (`sendwell.db.all_or_nothing`).

**Route modules never read a repository**: a handler parses its input, calls one service or
view function, and renders or redirects. What a page shows is assembled by the feature's view
module (`views.py`, `*_views.py`: a dataclass per page, its fields the names the template
reads) and what an API route answers by its services, so no route module imports a
repository module, however it is written. `KNOWN_REPOSITORY_IMPORTS` lists the route modules
that still do, each with why; the test fails on any other, and on an entry that no longer
imports one.
"""

from __future__ import annotations

import ast
from pathlib import Path

STATEMENTS = frozenset({"select", "update", "delete", "insert"})
OUTSIDE = frozenset({"migrations", "models", "sandbox"})

KNOWN_QUERIES: dict[str, str] = {}


def is_repository(path: Path) -> bool:
    return path.name == "repository.py" or path.name.endswith("_repository.py")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def statements_built(source: str) -> list[int]:
    """The lines where a SQLAlchemy statement is built: a call of a name imported from
    `sqlalchemy…` as one of STATEMENTS, or of that attribute of an imported `sqlalchemy…`
    module (`sa.select(...)`)."""
    tree = ast.parse(source)
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names |= {a.asname or a.name for a in node.names if a.name in STATEMENTS}
        elif isinstance(node, ast.Import):
            modules |= {
                a.asname or a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"
            }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        named = isinstance(func, ast.Name) and func.id in names
        dotted = (
            isinstance(func, ast.Attribute)
            and func.attr in STATEMENTS
            and ast.unparse(func.value) in modules
        )
        if named or dotted:
            lines.append(node.lineno)
    return sorted(lines)


def modules_building_queries(root: Path) -> dict[str, list[int]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        inside = path.relative_to(root).parts
        if is_repository(path) or inside[0] in OUTSIDE:
            continue
        lines = statements_built(path.read_text())
        if lines:
            found[module_name(root, path)] = lines
    return found


def test_the_check_sees_every_way_a_statement_is_built() -> None:
    source = (
        "import sqlalchemy as sa\n"
        "from sqlalchemy import select, update as change\n"
        "from sqlalchemy.dialects.postgresql import insert\n"
        "from other import delete\n"
        "select(A)\n"
        "change(A)\n"
        "insert(A)\n"
        "sa.delete(A)\n"
        "delete(A)\n"  # not SQLAlchemy's
        "db.select(A)\n"  # not a module of SQLAlchemy
    )
    assert statements_built(source) == [5, 6, 7, 8]


def test_queries_are_built_only_in_repositories(project_root: Path) -> None:
    found = modules_building_queries(project_root / "src" / "sendwell")
    unexpected = {m: lines for m, lines in found.items() if m not in KNOWN_QUERIES}
    assert unexpected == {}, "move these queries into the feature's repository.py"


def test_known_query_builders_still_build_queries(project_root: Path) -> None:
    """A module whose queries moved leaves the list too, so the list only shrinks."""
    found = modules_building_queries(project_root / "src" / "sendwell")
    assert sorted(set(KNOWN_QUERIES) - set(found)) == []


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


KNOWN_REPOSITORY_IMPORTS: dict[str, str] = {}


def repository_imports(path: Path) -> list[str]:
    """Each import of a repository module (`repository`, `*_repository`) or of a name from one,
    as `line module`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in modules:
            last = module.rsplit(".", 1)[-1]
            if last == "repository" or last.endswith("_repository"):
                found.append(f"{node.lineno} {module}")
                break
    return found


def route_modules_reading_repositories(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        if is_route_module(path) and (lines := repository_imports(path)):
            found[module_name(root, path)] = lines
    return found


def test_no_route_module_imports_a_repository(project_root: Path) -> None:
    found = route_modules_reading_repositories(project_root / "src" / "sendwell")
    unexpected = {m: lines for m, lines in found.items() if m not in KNOWN_REPOSITORY_IMPORTS}
    assert unexpected == {}, "build what the page shows in the feature's views.py"


def test_known_repository_imports_still_exist(project_root: Path) -> None:
    """A route module that stopped importing a repository leaves the list too."""
    found = route_modules_reading_repositories(project_root / "src" / "sendwell")
    assert sorted(set(KNOWN_REPOSITORY_IMPORTS) - set(found)) == []


def test_the_check_sees_every_way_a_repository_is_imported(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    (root / "feature").mkdir(parents=True)
    (root / "feature" / "views.py").write_text("from tiny.feature import repository\n")
    (root / "feature" / "web.py").write_text(
        "from tiny.feature import service, views\nfrom tiny.other.repo_tools import x\n"
    )
    assert route_modules_reading_repositories(root) == {}
    (root / "feature" / "api.py").write_text(
        "import tiny.feature.repository\n"
        "from tiny.feature import service, repository as repo\n"
        "from tiny.feature.recipient_repository import Filter\n"
        "from . import send_repository\n"
    )
    assert route_modules_reading_repositories(root) == {
        "tiny.feature.api": [
            "1 tiny.feature.repository",
            "2 tiny.feature.repository",
            "3 tiny.feature.recipient_repository",
            "4 .send_repository",
        ]
    }
