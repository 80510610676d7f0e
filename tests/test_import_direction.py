"""Imports point one way: from the top (the app's assembly) through the features, in their
declared order, down to the ground floor — and never back up.

The layers, lowest first:

- **ground**: `kit` (events, signals, clock, errors…), `config`, `db`, `models`, `providers`,
  `migrate`, `migrations`, `metrics` (counts tables and provider calls; owns no rules) and
  `web` (the page kit every feature renders with: templates, request dependencies,
  middleware). Ground modules import each other freely and never a feature or the top.
- **features**, in this order: `sandbox` (an emulated host: ground only), `accounts`,
  `mailboxes`, `campaigns`, `snippets`, `replies`, `dispatch`, `delegations`, `teams`,
  `webhooks`, `notifications`. A feature may import the features before it; a change that must
  move a feature after it (a mailbox that breaks pauses its campaigns, every change writes the
  webhook outbox, the owner is emailed) is published as a domain event (`sendwell.kit.events`,
  ground) and the later feature subscribes in `sendwell.wiring`. The order is the code's own:
  campaigns compose with mailboxes' accounts, snippets are checked as campaign templates,
  replies belong to campaigns' recipients, the sending engine reads campaigns and mailboxes
  and records replies, delegations and teams manage who sends from them, the webhook outbox
  hears everything, and the notification emails hear what people must be told of. The
  recipient and send status tables (`models/lifecycle.py`) sit on the ground floor with the
  statuses themselves, so campaigns (adding, pausing, moving recipients) and the engine change
  statuses through the same functions.
- **pages**: a feature's route modules (`web.py`, `api.py`, any `*_web.py` or `*_api.py`)
  translate requests into service calls, and its view modules (`views.py`, any `*_views.py`)
  compose what a page shows, so they sit above every feature's core: a page may call any
  feature's services (the Settings tab lists the campaigns a mailbox's break paused, and
  resumes them), and the pages of the features before its own (a shared banner). No core
  module imports a page.
- **top**: `app`, `cli`, `wiring`, `__main__` — assembly; they may import anything.

Every import counts, wherever it is written: at module level, inside a function (a deferred
import is still a dependency, only a hidden one), and under `if TYPE_CHECKING:` (a type that
names a later feature's class couples the two as surely, and turns into a runtime import with
the first `isinstance`).

`KNOWN_UPWARD` lists the upward imports not yet removed, each with why it remains; the test
fails on any other, and on an entry that no longer occurs (so the list only shrinks).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

GROUND = frozenset(
    {"kit", "config", "db", "models", "providers", "migrate", "migrations", "metrics", "web"}
)
# Lowest first; features that share a tier are peers, which never import each other.
FEATURES: tuple[frozenset[str], ...] = tuple(
    frozenset({name})
    for name in (
        "sandbox",
        "accounts",
        "mailboxes",
        "campaigns",
        "snippets",
        "replies",
        "dispatch",
        "delegations",
        "teams",
        "webhooks",
        "notifications",
    )
)
TOP = frozenset({"app", "cli", "wiring", "__main__"})
# A feature's route and view modules: the pages layer.
PAGES = frozenset({"web", "api", "server_web", "views"})
PAGE_SUFFIXES = ("_web", "_api", "_views")

# Upward imports that remain, importer module -> imported module, with the reason.
KNOWN_UPWARD: dict[str, str] = {}


@dataclass(frozen=True)
class Layers:
    ground: frozenset[str]
    features: tuple[frozenset[str], ...]
    top: frozenset[str]
    pages: frozenset[str] = PAGES

    def rank(self, part: str) -> int | None:
        """0 for the ground, 1… for the feature tiers in order, past them for the top."""
        if part in self.ground or part == "":
            return 0
        for tier, names in enumerate(self.features, start=1):
            if part in names:
                return tier
        if part in self.top:
            return 1 + len(self.features)
        return None


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import a module makes of its own package: module level, inside functions and
    under TYPE_CHECKING alike; `from a import b` names `a.b` when `b` is a module."""
    package = root.name
    importer = module_name(root, path)
    base = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                module = ".".join([*prefix, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = []
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                relative = candidate.split(".")[1:]
                as_module = root.joinpath(*relative)
                is_module = as_module.with_suffix(".py").is_file() or as_module.is_dir()
                names.append(candidate if is_module else module)
        else:
            continue
        for name in names:
            if name == package or name.startswith(package + "."):
                found.append(Import(importer, name, node.lineno))
    return found


def upward_imports(root: Path, layers: Layers) -> list[Import]:
    """Imports from a lower layer to a higher one, or between two features of one tier."""
    return [
        found
        for path in sorted(root.rglob("*.py"))
        for found in imports_of(root, path)
        if not _allowed(found, layers)
    ]


def _allowed(found: Import, layers: Layers) -> bool:
    importer, imported = _part(found.importer), _part(found.imported)
    low, high = layers.rank(importer), layers.rank(imported)
    top = 1 + len(layers.features)
    if low is None or high is None:
        return False  # a package no layer names: declare it first
    if importer == imported or low == top or high == 0:
        return True
    if low == 0 or high == top:
        return False  # the ground reaching up, or anything but the top reaching the top
    if _is_page(found.imported, layers):
        return _is_page(found.importer, layers) and high < low
    # A feature's core: pages read every feature's, cores only those of earlier tiers.
    return _is_page(found.importer, layers) or high < low


def _part(module: str) -> str:
    """The package's first level: `sendwell.campaigns.service` -> `campaigns`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_page(module: str, layers: Layers) -> bool:
    parts = module.split(".")
    return len(parts) > 2 and (parts[2] in layers.pages or parts[2].endswith(PAGE_SUFFIXES))


SENDWELL = Layers(GROUND, FEATURES, TOP)


def test_every_package_has_a_layer(project_root: Path) -> None:
    root = project_root / "src" / "sendwell"
    packages = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    assert [name for name in sorted(packages | modules) if SENDWELL.rank(name) is None] == []


def test_imports_point_down(project_root: Path) -> None:
    found = upward_imports(project_root / "src" / "sendwell", SENDWELL)
    unexpected = sorted(
        {f"{i} (line {i.line})" for i in found if str(i) not in KNOWN_UPWARD}, key=str
    )
    assert unexpected == []


def test_known_upward_imports_still_exist(project_root: Path) -> None:
    """A removed upward import leaves the list too, so the list only shrinks."""
    found = {str(i) for i in upward_imports(project_root / "src" / "sendwell", SENDWELL)}
    assert sorted(set(KNOWN_UPWARD) - found) == []


# Circles of modules that import each other (through any chain), with the reason they remain.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}


def import_cycles(root: Path) -> list[tuple[str, ...]]:
    """Groups of modules that reach each other through their imports (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        graph.setdefault(module_name(root, path), set()).update(
            found.imported for found in imports_of(root, path)
        )
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[tuple[str, ...]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in graph[module] & graph.keys():
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            group.append(module)
            if len(group) > 1:
                cycles.append(tuple(sorted(group)))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return sorted(cycles)


def test_no_import_cycles(project_root: Path) -> None:
    """The sending engine's old circle (engine -> inbound -> outcomes -> engine) and any new
    one fail here; a circle that is gone leaves the list."""
    assert import_cycles(project_root / "src" / "sendwell") == sorted(KNOWN_CYCLES)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A package with a ground floor, two features in order and a top."""
    return _write(
        tmp_path / "tiny",
        {
            "__init__.py": "",
            "kit/__init__.py": "",
            "kit/events.py": "",
            "low/__init__.py": "",
            "low/service.py": "from tiny.kit import events\n",
            "high/__init__.py": "",
            "high/service.py": "from tiny.low import service\nfrom tiny.kit import events\n",
            "app.py": "from tiny.high import service\nfrom tiny.low import service as low\n",
        },
    )


TINY = Layers(frozenset({"kit"}), (frozenset({"low"}), frozenset({"high"})), frozenset({"app"}))


def test_a_clean_package_passes(tiny: Path) -> None:
    assert upward_imports(tiny, TINY) == []


@pytest.mark.parametrize(
    ("planted", "expected"),
    [
        # a lower feature importing a higher one, at module level
        ("low/rules.py", "from tiny.high import service\n"),
        # the same hidden in a function
        ("low/rules.py", "def check() -> None:\n    from tiny.high.service import x\n"),
        # the same for a type only
        (
            "low/rules.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tiny.high.service\n",
        ),
        # relative, from the ground floor
        ("kit/clock.py", "from ..low import service\n"),
        # a feature reaching the top
        ("high/web.py", "import tiny.app\n"),
        # a core module using a page, even a lower feature's
        ("high/rules.py", "from tiny.low.web import banner\n"),
        # a page using a later feature's page
        ("low/api.py", "from tiny.high.web import banner\n"),
    ],
)
def test_a_planted_upward_import_fails(tiny: Path, planted: str, expected: str) -> None:
    _write(tiny, {planted: expected})
    found = upward_imports(tiny, TINY)
    assert [i.importer for i in found] == ["tiny." + planted.removesuffix(".py").replace("/", ".")]


def test_a_page_may_call_any_features_services(tiny: Path) -> None:
    _write(
        tiny,
        {
            "low/web.py": "from tiny.high import service\n",
            "high/web.py": "from tiny.low import web\nfrom tiny.low.service import x\n",
        },
    )
    assert upward_imports(tiny, TINY) == []


def test_peers_may_not_import_each_other(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "tiny",
        {
            "__init__.py": "",
            "kit/__init__.py": "",
            "kit/events.py": "",
            "a/__init__.py": "",
            "a/service.py": "from tiny.kit import events\nfrom tiny.b import service\n",
            "b/__init__.py": "",
            "b/service.py": "",
        },
    )
    # One tier: a and b may talk only through kit.events.
    peers = Layers(frozenset({"kit"}), (frozenset({"a", "b"}),), frozenset())
    assert [str(i) for i in upward_imports(root, peers)] == ["tiny.a.service -> tiny.b.service"]


def test_a_planted_cycle_fails(tiny: Path) -> None:
    assert import_cycles(tiny) == []
    _write(
        tiny,
        {
            "high/engine.py": "from tiny.high import outcomes\n",
            "high/outcomes.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from tiny.high.engine import Claim\n",
        },
    )
    assert import_cycles(tiny) == [("tiny.high.engine", "tiny.high.outcomes")]
