"""The render budget of merge-field templates, enforced by the template environment itself.

Jinja2's sandbox keeps templates away from Python's internals but not from memory and time: a
template can repeat, join, pad and loop its way to hundreds of megabytes. Here every value a
template builds (by an operator, a filter, a call, a `~` concatenation) is measured, every loop
iteration, call and look-up is counted, the output is counted as it is produced, and a clock
runs; the first limit passed stops the render with `OverBudget` and the reason. Operations that
could build a large value from small ones (repetition, powers, padding, replacing, indenting,
`%` widths) are checked before they run; the rest are measured after, which is safe because no
input can be larger than `MAX_VALUE_SIZE` to begin with.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_OUTPUT_CHARS = 200_000  # one rendered subject, body or HTML body
MAX_VALUE_SIZE = 100_000  # characters, items and digits in any one value a template builds
MAX_WORK = 500_000  # loop iterations, calls and look-ups, plus the size of every value built
# Processor time of one render. Not wall-clock time: a busy server that leaves the thread
# waiting for a core must not turn a harmless template into a refused one.
MAX_SECONDS = 1.0
# Sources kept compiled per environment (each campaign step has a subject and one or two bodies).
COMPILED_TEMPLATES = 512
MAX_NUMBER_ARGUMENT = 10_000  # a width, count or length given to a filter or to range()
# String methods a template may call: none of them builds more than it was given.
STR_METHODS = frozenset(
    (
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    )
)
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)")
_BRACE_NESTED = re.compile(r"\{[^{}]*:[^{}]*\{")


class OverBudget(SecurityError):
    """A template asked for more than one render may use; the message says what."""


class Budget:
    """What one render has used so far."""

    def __init__(self) -> None:
        self.work = 0
        self.deadline = time.thread_time() + MAX_SECONDS

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise OverBudget(
                f"it does too much work (more than {MAX_WORK:,} loop iterations, calls and "
                "characters built)"
            )
        if time.thread_time() > self.deadline:
            raise OverBudget(f"it takes longer than {MAX_SECONDS:g} s to render")


_budget: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def budgeted() -> Iterator[Budget]:
    """A fresh budget for the renders inside the block."""
    budget = Budget()
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _spend(units: int) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.spend(units)


def size_of(value: object) -> int:
    """Characters, items and digits in a value, counted only until past `MAX_VALUE_SIZE`."""
    total = visited = 0
    stack = [value]
    while stack and total <= MAX_VALUE_SIZE:
        item = stack.pop()
        visited += 1
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or not isinstance(item, int | dict | list | tuple | set):
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1  # about its decimal digits
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += len(item)
            stack.extend(item)
    _spend(visited)
    return total


def _within(value: object) -> int:
    """The value's size, refused past `MAX_VALUE_SIZE`."""
    size = size_of(value)
    if size > MAX_VALUE_SIZE:
        raise OverBudget(f"it builds a value larger than {MAX_VALUE_SIZE:,} characters or items")
    return size


def checked(value: Any) -> Any:
    """A value a template just built: refused past the limit, its size spent from the budget."""
    _spend(_within(value))
    return value


def _refuse_large(what: str) -> OverBudget:
    return OverBudget(f"it asks for {what} larger than {MAX_NUMBER_ARGUMENT:,}")


def _check_numbers(arguments: Iterable[Any]) -> None:
    for argument in arguments:
        is_number = isinstance(argument, int) and not isinstance(argument, bool)
        if is_number and abs(argument) > MAX_NUMBER_ARGUMENT:
            raise _refuse_large("a width, count or length")


def _check_format(template: str) -> None:
    """A `%` or `{:…}` format whose widths would pad a value past the limits."""
    numbers = [n for match in _PERCENT_WIDTH.finditer(template) for n in match.groups() if n]
    numbers += [match.group(1) for match in _BRACE_WIDTH.finditer(template)]
    # A width taken from the arguments ("%*s", "{:{}}") is not known here: refused.
    if "*" in numbers or _BRACE_NESTED.search(template):
        raise OverBudget("it takes a format width from its arguments")
    if any(int(number) > MAX_NUMBER_ARGUMENT for number in numbers):
        raise _refuse_large("a format width")


def _check_repetition(left: Any, right: Any) -> None:
    sized, count = (left, right) if isinstance(right, int) else (right, left)
    repeatable = isinstance(sized, str | list | tuple) and isinstance(count, int)
    if repeatable and size_of(sized) * max(count, 0) > MAX_VALUE_SIZE:
        raise OverBudget(f"it repeats a value past {MAX_VALUE_SIZE:,} characters or items")


def _check_power(left: Any, right: Any) -> None:
    powers = isinstance(left, int) and isinstance(right, int) and right > 1
    if powers and max(left.bit_length(), 1) * right > 3 * MAX_VALUE_SIZE:
        raise OverBudget(f"it computes a number of more than {MAX_VALUE_SIZE:,} digits")


def _check_filter(name: str, value: Any, arguments: list[Any]) -> None:
    """Filters that can build much more than they are given, checked before they run."""
    _check_numbers(arguments)
    if name == "replace" and isinstance(value, str) and len(arguments) >= 2:
        old, new = str(arguments[0]), str(arguments[1])
        count = value.count(old) if old else len(value) + 1
        if count * len(new) > MAX_VALUE_SIZE:
            raise OverBudget(f"it replaces past {MAX_VALUE_SIZE:,} characters")
    if name == "indent" and isinstance(value, str):
        width = arguments[0] if arguments and isinstance(arguments[0], int) else 4
        if (value.count("\n") + 1) * abs(width) > MAX_VALUE_SIZE:
            raise OverBudget(f"it indents past {MAX_VALUE_SIZE:,} characters")
    if name == "format" and isinstance(value, str):
        _check_format(value)


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks its input and arguments first and measures its result."""
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _spend(1)
        value, arguments = args[offset] if len(args) > offset else None, list(args[offset + 1 :])
        arguments += list(kwargs.values())
        for argument in (value, *arguments):
            _within(argument)
        _check_filter(name, value, arguments)
        return checked(function(*args, **kwargs))

    return guarded


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every loop's iterable: each iteration is spent from the budget."""
    for item in iterable:
        _spend(1)
        yield item


def _range(*arguments: int) -> range:
    """`range()`, bounded like every other count a template gives."""
    _check_numbers(arguments)
    return range(*arguments)


class _BudgetCodeGenerator(CodeGenerator):
    """Compiles templates so that loops and `~` concatenations go through the budget."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.EnvironmentAttribute("counted_iterable", lineno=node.lineno)
        if not (isinstance(node.iter, nodes.Call) and node.iter.node == counted):
            node.iter = nodes.Call(counted, [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the render budget on every operation."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        self.globals = {
            "range": _range,
            "dict": self.globals["dict"],
            "namespace": self.globals["namespace"],
        }
        # Compiled templates by source: a step's templates are rendered for every recipient
        # it goes to, and compiling costs many times what rendering does. A compiled template
        # holds no render state (the budget is counted per render), so one serves them all.
        self._compiled = functools.lru_cache(maxsize=COMPILED_TEMPLATES)(self.from_string)

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Joins a macro's or a `{% set %}` block's output, measured before it is built."""
        pieces = list(parts)
        size = sum(len(piece) for piece in pieces)
        if size > MAX_VALUE_SIZE:
            raise OverBudget(f"it builds a block longer than {MAX_VALUE_SIZE:,} characters")
        _spend(size + len(pieces))
        return "".join(pieces)

    @staticmethod
    def checked_value(value: Any) -> Any:
        return checked(value)

    @staticmethod
    def counted_iterable(iterable: Iterable[Any]) -> Iterator[Any]:
        return _counted(iterable)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _spend(1)
        if operator == "*":
            _check_repetition(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call from a template: its arguments and result measured."""
        _spend(1)
        for argument in (*args, *kwargs.values()):
            _within(argument)
        return checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _spend(1)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend(1)
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, refused when a width would pad past the limits."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def render_bounded(self, source: str, fields: dict[str, Any]) -> str:
        """Render within a fresh budget, refusing output past `MAX_OUTPUT_CHARS`."""
        with budgeted() as budget:
            parts: list[str] = []
            length = 0
            for part in self._compiled(source).generate(fields):
                length += len(part)
                if length > MAX_OUTPUT_CHARS:
                    raise OverBudget(f"its result is longer than {MAX_OUTPUT_CHARS:,} characters")
                budget.spend(1)
                parts.append(part)
            return "".join(parts)
