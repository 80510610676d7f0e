"""Merge-field templates: Jinja2's sandbox, strict about unknown names, safe in headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.sandbox import SecurityError

from sendwell.campaigns.template_budget import BudgetedSandbox, OverBudget
from sendwell.kit.errors import InvalidInput
from sendwell.kit.headers import HEADER_FORBIDDEN

STANDARD_FIELDS = ("first_name", "last_name", "full_name", "email", "company", "title")
SENDER_FIELDS = ("sender_name", "signature")
MAX_SUBJECT_LENGTH = 998  # RFC 5322 line limit


class TemplateProblem(InvalidInput):
    code = "template_error"
    # Set when the problem is a merge field with no value: which field, and in which part.
    missing: str = ""
    where: str = ""


_text = BudgetedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html = BudgetedSandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)
# For the check at save: names no recipient has yet render as nothing.
_lenient = BudgetedSandbox(undefined=Undefined, autoescape=False, keep_trailing_newline=True)
# What a sample recipient holds when a template is checked at save.
SAMPLE_FIELDS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "company": "Analytical Engines",
    "title": "Engineer",
    "sender_name": "Grace Hopper",
    "signature": "Grace",
}


@dataclass(frozen=True)
class RenderedStep:
    subject: str
    body: str
    body_html: str


def check_syntax(source: str, where: str) -> None:
    """Refuse a template that does not parse, naming where and the line."""
    try:
        _text.parse(source)
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"{where}: {error.message} (line {error.lineno}).") from None


def check_budget(source: str, where: str) -> None:
    """Refuse a template that goes over its render budget for a sample recipient.

    Other failures (a name only some recipients have, say) are left to the check at start,
    which renders every step for every recipient.
    """
    try:
        _lenient.render_bounded(source, SAMPLE_FIELDS)
    except OverBudget as error:
        raise TemplateProblem(_over_budget(where, error)) from None
    except Exception:  # judged per recipient when the campaign starts
        return


def merge_fields(recipient: dict[str, Any], sender: dict[str, str]) -> dict[str, Any]:
    """The names a template can use for one recipient: standard, custom columns, sender."""
    first = str(recipient.get("first_name") or "")
    last = str(recipient.get("last_name") or "")
    values: dict[str, Any] = dict.fromkeys(STANDARD_FIELDS, "")
    # Custom columns first, so a column can never shadow a standard or sender field.
    values.update({str(k): v for k, v in (recipient.get("fields") or {}).items()})
    values.update({name: str(recipient.get(name) or "") for name in STANDARD_FIELDS})
    values["full_name"] = " ".join(part for part in (first, last) if part)
    values.update({name: sender.get(name, "") for name in SENDER_FIELDS})
    # Empty values count as missing for `default`, so "Hi {{ first_name | default('there') }}"
    # greets a recipient without a first name.
    return {name: value for name, value in values.items() if value not in ("", None)}


def render_text(source: str, fields: dict[str, Any], where: str) -> str:
    return _render(_text, source, fields, where)


def _render(env: BudgetedSandbox, source: str, fields: dict[str, Any], where: str) -> str:
    """Render, turning every way a template can fail into a sentence naming where."""
    try:
        return env.render_bounded(source, fields)
    except OverBudget as error:
        raise TemplateProblem(_over_budget(where, error)) from None
    except UndefinedError as error:
        problem = TemplateProblem(f"{where}: {_undefined_message(error)}")
        problem.missing, problem.where = _undefined_name(error), where
        raise problem from None
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"{where}: {error.message} (line {error.lineno}).") from None
    except SecurityError:
        raise TemplateProblem(f"{where}: the template uses something templates may not.") from None
    except Exception as error:  # a merge field used the wrong way: 1/0, "a" + 1, …
        raise TemplateProblem(f"{where}: {type(error).__name__}: {error}") from None


def render_header(source: str, fields: dict[str, Any], where: str) -> str:
    """A header value (the subject): one line, no CR, LF or NUL, within the length limit."""
    value = render_text(source, fields, where).strip()
    if any(char in value for char in HEADER_FORBIDDEN):
        raise TemplateProblem(
            f"{where}: the result contains a line break or NUL character, "
            "which is not allowed in an email header."
        )
    if not value:
        raise TemplateProblem(f"{where}: the result is empty.")
    if len(value) > MAX_SUBJECT_LENGTH:
        raise TemplateProblem(
            f"{where}: the result is longer than {MAX_SUBJECT_LENGTH} characters."
        )
    return value


def render_step(
    subject: str, body: str, body_html: str, fields: dict[str, Any], step_label: str
) -> RenderedStep:
    """Subject, text body and optional HTML body (merge fields escaped) for one recipient."""
    subject = render_header(subject, fields, f"{step_label} subject")
    return RenderedStep(subject, *render_bodies(body, body_html, fields, step_label))


def render_bodies(
    body: str, body_html: str, fields: dict[str, Any], step_label: str
) -> tuple[str, str]:
    """The text body and the optional HTML body (merge fields escaped) for one recipient."""
    html = _render(_html, body_html, fields, f"{step_label} HTML body") if body_html.strip() else ""
    return render_text(body, fields, f"{step_label} body"), html


def _over_budget(where: str, error: OverBudget) -> str:
    return f"{where}: the template is over its render budget: {error}."


def check_header_value(value: str, what: str) -> str:
    """A plain header value such as a sender name: refused if it could break the header."""
    if any(char in value for char in HEADER_FORBIDDEN):
        raise InvalidInput(
            f"{what} contains a line break or NUL character.", code="header_injection"
        )
    return value


# Merge fields that come from the sending account, with the setting's name.
SENDER_SETTINGS = {"sender_name": "sender name", "signature": "signature"}


def _undefined_name(error: UndefinedError) -> str:
    text = str(error.message or "")
    return text.split("'")[1] if "is undefined" in text and "'" in text else ""


def _undefined_message(error: UndefinedError) -> str:
    text = str(error.message or "")
    if "is undefined" in text:
        name = text.split("'")[1] if "'" in text else text
        if name in SENDER_SETTINGS:
            return (
                f"the sending account has no {SENDER_SETTINGS[name]} yet. Set it in the account's "
                f"Email Settings (Settings tab), or give a default: "
                f'{{{{ {name} | default("") }}}}.'
            )
        return (
            f"the recipient has no value for {{{{ {name} }}}}. Add the column, or give a "
            f'default: {{{{ {name} | default("…") }}}}.'
        )
    return text
