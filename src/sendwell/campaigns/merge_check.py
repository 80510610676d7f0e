"""Merge fields checked when a campaign is saved, against what its recipients really have.

A typo such as `{{ compnay }}` is refused with a suggestion ("did you mean {{ company }}?"),
and a field some recipients lack is reported once, with how many of them lack it — never
once per recipient. What blocks and what warns:

- a name no recipient has and no built-in field is (while the campaign has recipients), or
  a name close to a known one (a typo, recipients or not): an error, Save is refused;
- a name used without a `default` that is empty for some recipients: a warning at Save
  (Start refuses it until they have a value or the template gives a default);
- a custom name while the campaign has no recipient yet: a warning (import a column of
  that name before starting).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import TemplateSyntaxError, meta, nodes
from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.campaigns import templates
from sendwell.kit.errors import InvalidInput

# Filters and tests that make a missing value harmless where the name is used.
DEFAULT_FILTERS = frozenset(("default", "d"))
DEFINED_TESTS = frozenset(("defined", "undefined"))
SUGGESTION_CUTOFF = 0.75


class StepText(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def body_html(self) -> str: ...


class UnknownMergeField(InvalidInput):
    code = "unknown_merge_field"


@dataclass
class _Use:
    """Where one merge field is used, and whether every use has a fallback."""

    places: list[str] = field(default_factory=list)
    guarded: bool = True


@dataclass(frozen=True)
class FieldReport:
    errors: list[str]
    warnings: list[str]


def used_fields(steps: Sequence[StepText]) -> dict[str, _Use]:
    """Every merge field the steps read, where, and whether each use has a fallback."""
    env_globals = set(templates._text.globals)
    uses: dict[str, _Use] = {}
    for position, step in enumerate(steps, 1):
        for part, source in (
            ("subject", step.subject),
            ("body", step.body),
            ("HTML body", step.body_html),
        ):
            if not source.strip():
                continue
            try:
                tree = templates._text.parse(source)
            except TemplateSyntaxError:
                continue  # the syntax check names it
            free = meta.find_undeclared_variables(tree) - env_globals
            guarded = _guarded_names(tree)
            for name in sorted(free):
                use = uses.setdefault(name, _Use())
                place = f"step {position} {part}"
                if place not in use.places:
                    use.places.append(place)
                if guarded.get(name) is False or name not in guarded:
                    use.guarded = False
    return uses


def _guarded_names(tree: nodes.Template) -> dict[str, bool]:
    """name -> True when every use of it sits under `default` or an `is defined` test."""
    safe: set[int] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        names = DEFAULT_FILTERS if isinstance(node, nodes.Filter) else DEFINED_TESTS
        if node.name in names and isinstance(node.node, nodes.Name):
            safe.add(id(node.node))
    result: dict[str, bool] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx != "load":
            continue
        result[name_node.name] = result.get(name_node.name, True) and id(name_node) in safe
    return result


def review(db: Session, campaign_id: int, steps: Sequence[StepText]) -> FieldReport:
    """Errors that refuse a Save and warnings to show after it, one line per field."""
    uses = used_fields(steps)
    if not uses:
        return FieldReport([], [])
    total, present = _recipient_fields(db, campaign_id, set(uses))
    builtin = (*templates.STANDARD_FIELDS, *templates.SENDER_FIELDS)
    known = set(builtin) | set(present)
    errors: list[str] = []
    warnings: list[str] = []
    for name, use in uses.items():
        where = ", ".join(use.places)
        if name not in known:
            suggestion = _closest(name, known)
            if suggestion:
                errors.append(
                    f"{{{{ {name} }}}} ({where}) is not a merge field: "
                    f"did you mean {{{{ {suggestion} }}}}?"
                )
            elif use.guarded:
                continue  # a default covers every recipient
            elif total:
                custom = set(present) - set(builtin)
                columns = ", ".join(sorted(custom)) or "none"
                errors.append(
                    f"{{{{ {name} }}}} ({where}) is not a column of this campaign's recipients "
                    f"(their extra columns: {columns}). Import a column named {name}, or give a "
                    f'default: {{{{ {name} | default("…") }}}}.'
                )
            else:
                warnings.append(
                    f"{{{{ {name} }}}} ({where}): no recipient has it yet; import a column "
                    f"named {name} before starting."
                )
            continue
        if name in templates.SENDER_FIELDS or use.guarded or not total:
            continue
        empty = total - present.get(name, 0)
        if empty:
            warnings.append(
                f"{{{{ {name} }}}} is empty for {empty} of {total} recipient"
                f"{'s' if total != 1 else ''} ({where}): Start is refused until they have a "
                f'value, or give a default: {{{{ {name} | default("…") }}}}.'
            )
    return FieldReport(errors, warnings)


def refuse_unknown(db: Session, campaign_id: int, steps: Sequence[StepText]) -> None:
    """Raise `UnknownMergeField` naming every unknown merge field, one line each."""
    report = review(db, campaign_id, steps)
    if report.errors:
        raise UnknownMergeField(" ".join(report.errors))


def _closest(name: str, known: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else ""


def _recipient_fields(
    db: Session, campaign_id: int, wanted: set[str]
) -> tuple[int, dict[str, int]]:
    """(recipients, {field: how many have a value}) over the campaign's recipients.

    Custom columns are counted whether or not the steps use them (they are the names a typo is
    compared with); standard fields only when used.
    """
    total = 0
    present: dict[str, int] = {}
    for values in repo.recipient_field_values(db, campaign_id):
        total += 1
        for name in _filled(values, wanted):
            present[name] = present.get(name, 0) + 1
    return total, present


def _filled(values: dict[str, Any], wanted: set[str]) -> Iterable[str]:
    for name in templates.STANDARD_FIELDS:
        if name in wanted and _has_value(values, name):
            yield name
    for name, value in (values.get("fields") or {}).items():
        if value not in ("", None):
            yield str(name)


def _has_value(values: dict[str, Any], name: str) -> bool:
    if name == "full_name":
        return bool(values.get("first_name") or values.get("last_name"))
    return bool(values.get(name))
