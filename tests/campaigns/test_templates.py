"""Merge-field templates: the names they see, strictness, header safety, HTML escaping, sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendwell.campaigns import templates
from sendwell.campaigns.templates import TemplateProblem
from sendwell.kit.errors import InvalidInput

SENDER = {"sender_name": "Ada Lovelace", "signature": "-- Ada"}


def fields(**recipient: Any) -> dict[str, Any]:
    return templates.merge_fields(recipient, SENDER)


def render(source: str, **recipient: Any) -> str:
    return templates.render_text(source, fields(**recipient), "Step 1 body")


# Merge fields --------------------------------------------------------------------------------


def test_standard_custom_and_sender_fields() -> None:
    values = fields(
        email="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
        company="Navy",
        title="Rear Admiral",
        fields={"project": "COBOL", "city": "Arlington"},
    )
    assert values == {
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "full_name": "Grace Hopper",
        "company": "Navy",
        "title": "Rear Admiral",
        "project": "COBOL",
        "city": "Arlington",
        "sender_name": "Ada Lovelace",
        "signature": "-- Ada",
    }
    text = templates.render_text(
        "{{ full_name }} ({{ title }}, {{ company }}) on {{ project }} in {{ city }}\n"
        "{{ sender_name }}\n{{ signature }}",
        values,
        "Step 1 body",
    )
    assert text == "Grace Hopper (Rear Admiral, Navy) on COBOL in Arlington\nAda Lovelace\n-- Ada"


def test_full_name_with_one_part() -> None:
    assert render("{{ full_name }}", first_name="Grace") == "Grace"
    assert render("{{ full_name }}", last_name="Hopper") == "Hopper"


def test_a_custom_column_cannot_shadow_a_standard_or_sender_field() -> None:
    values = fields(
        first_name="Grace", fields={"first_name": "Mallory", "sender_name": "Eve", "role": "CTO"}
    )
    assert (values["first_name"], values["sender_name"], values["role"]) == (
        "Grace",
        "Ada Lovelace",
        "CTO",
    )


def test_default_covers_missing_and_empty_values() -> None:
    source = "Hi {{ first_name | default('there') }}, {{ project | default('your project') }}"
    assert render(source, first_name="", fields={"project": ""}) == "Hi there, your project"
    assert render(source, first_name="Grace", fields={"project": "COBOL"}) == "Hi Grace, COBOL"


# Strictness ----------------------------------------------------------------------------------


def test_an_undefined_name_is_refused_with_a_hint() -> None:
    with pytest.raises(TemplateProblem) as refused:
        render("Hi {{ nickname }}", first_name="Grace")
    message = refused.value.message
    assert message.startswith("Step 1 body: the recipient has no value for {{ nickname }}.")
    assert 'default("…")' in message
    assert refused.value.status_code == 422


def test_an_empty_signature_points_to_the_accounts_settings() -> None:
    no_signature = templates.merge_fields({"first_name": "Grace"}, {**SENDER, "signature": ""})
    with pytest.raises(TemplateProblem) as refused:
        templates.render_text("Thanks,\n{{ signature }}", no_signature, "Step 1 body")
    message = refused.value.message
    assert message.startswith("Step 1 body: the sending account has no signature yet.")
    assert "Email Settings" in message
    assert "recipient" not in message


def test_an_empty_standard_field_counts_as_missing() -> None:
    with pytest.raises(TemplateProblem, match=r"\{\{ first_name \}\}"):
        render("Hi {{ first_name }}", first_name="")


def test_syntax_errors_name_the_place_and_line() -> None:
    with pytest.raises(TemplateProblem) as refused:
        templates.check_syntax("Hello\n{{ first_name", "Step 2 subject")
    assert refused.value.message.startswith("Step 2 subject: ")
    assert refused.value.message.endswith("(line 2).")
    templates.check_syntax("Hi {{ first_name | default('x') }}", "Step 2 subject")


# Subjects (headers) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "company", ["Acme\r\nBcc: victim@example.com", "Acme\nInc", "Acme\rInc", "Acme\0Inc"]
)
def test_a_subject_with_a_line_break_or_nul_from_a_merge_field_is_refused(company: str) -> None:
    with pytest.raises(TemplateProblem, match="line break or NUL"):
        templates.render_header("News for {{ company }}", fields(company=company), "Step 1 subject")


def test_a_subject_is_trimmed_one_line_and_bounded() -> None:
    assert templates.render_header("  Hi {{ x }}\n", {"x": "Grace"}, "S") == "Hi Grace"
    with pytest.raises(TemplateProblem, match="the result is empty"):
        templates.render_header("{{ x }}", {"x": "   "}, "S")
    with pytest.raises(TemplateProblem, match="longer than 998"):
        templates.render_header("{{ x }}", {"x": "a" * 999}, "S")


def test_a_sender_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(InvalidInput, match="line break"):
        templates.check_header_value("Ada\r\nBcc: x@example.com", "The sender name")
    assert templates.check_header_value("Ada", "The sender name") == "Ada"


# HTML ----------------------------------------------------------------------------------------


def test_the_html_body_escapes_merge_fields_and_the_text_body_does_not() -> None:
    rendered = templates.render_step(
        "Hi {{ company }}",
        "About {{ company }}",
        "<p>About <b>{{ company }}</b></p>",
        fields(company='<script>alert("x")</script> & Co'),
        "Step 1",
    )
    assert rendered.body_html == (
        "<p>About <b>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co</b></p>"
    )
    assert rendered.body == 'About <script>alert("x")</script> & Co'
    assert rendered.subject == 'Hi <script>alert("x")</script> & Co'


def test_without_an_html_body_none_is_rendered() -> None:
    rendered = templates.render_step("S", "B", "  ", {}, "Step 1")
    assert (rendered.subject, rendered.body, rendered.body_html) == ("S", "B", "")


def test_an_undefined_name_in_the_html_body_is_refused() -> None:
    with pytest.raises(TemplateProblem, match=r"^Step 4 HTML body: .*\{\{ nickname \}\}"):
        templates.render_step("S", "B", "<p>{{ nickname }}</p>", {}, "Step 4")


# The sandbox ---------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ first_name.__init__.__globals__ }}",
    "{{ [].append(1) }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_the_sandbox_blocks_attribute_access_in_text(source: str) -> None:
    with pytest.raises(TemplateProblem) as refused:
        templates.render_text(source, fields(first_name="Grace"), "Step 1 body")
    assert refused.value.message == "Step 1 body: the template uses something templates may not."
    with pytest.raises(TemplateProblem, match="templates may not"):
        templates.render_header(source, fields(first_name="Grace"), "Step 1 subject")


@pytest.mark.parametrize("source", ESCAPES[:1])
def test_the_sandbox_blocks_attribute_access_in_html(source: str) -> None:
    with pytest.raises(TemplateProblem, match=r"^Step 1 HTML body: .*templates may not"):
        templates.render_step("S", "B", source, fields(first_name="Grace"), "Step 1")


@pytest.mark.parametrize("source", ["{{ 1 / 0 }}", "{{ first_name + 1 }}"])
def test_a_runtime_error_is_a_template_problem(source: str) -> None:
    with pytest.raises(TemplateProblem, match=r"^Step 1 body: "):
        templates.render_text(source, fields(first_name="Grace"), "Step 1 body")


# The render budget --------------------------------------------------------------------------

# Each of these built hundreds of megabytes, or ran without end, before the budget.
BOMBS = {
    "a list of repeated values, joined": (
        '{% set x = "a" * 100000 %}{% set y = [x] * 1000 %}{{ y | join }}',
        "repeats a value past 100,000",
    ),
    "a literal list of large values, joined": (
        '{% set x = "a" * 100000 %}{{ [x, x, x] | join }}',
        "builds a value larger than 100,000",
    ),
    "a set block doubling itself": (
        '{% set x = "a" * 60000 %}{% set y %}{{ x }}{{ x }}{% endset %}{{ y }}',
        "builds a block longer than 100,000",
    ),
    "a concatenation in a namespace": (
        "{% set ns = namespace(x='ab') %}{% for i in range(40) %}"
        "{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
        "builds a value larger than 100,000",
    ),
    "nested loops with nothing to output": (
        "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
        # The work limit or the time limit, whichever a busy machine reaches first.
        "render budget: it ",
    ),
    "a loop past the count limit": (
        "{% for a in range(10**8) %}{% endfor %}",
        "larger than 10,000",
    ),
    "exponential macro calls": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "render budget: it ",
    ),
    "a huge padding": ("{{ 'a' | center(10**9) }}", "larger than 10,000"),
    "padding every item": (
        "{{ range(10000) | map('string') | map('center', 10000) | join }}",
        "does too much work",
    ),
    "a format width": ("{{ '%999999999s' % 'a' }}", "format width"),
    "a format width from the arguments": ("{{ '{:>{}}'.format('a', 10**9) }}", "format width"),
    "a str.format width": ("{{ '{:>999999999}'.format('a') }}", "format width"),
    "replacing every character": (
        "{{ ('a' * 100000) | replace('a', 'bbbbbbbbbb') }}",
        "replaces past 100,000",
    ),
    "indenting many lines": ("{{ ('x\n' * 50000) | indent(1000) }}", "indents past 100,000"),
    "a huge power": ("{{ 7 ** 1000000 }}", "more than 100,000 digits"),
    "padding by a string method": ("{{ first_name.ljust(10**9) }}", "templates may not"),
    "output past the limit": (
        "{% for i in range(5) %}{{ 'a' * 50000 }}{% endfor %}",
        "longer than 200,000",
    ),
}


@pytest.mark.parametrize("source", [s for s, _ in BOMBS.values()], ids=list(BOMBS))
def test_a_template_over_its_render_budget_is_refused_with_the_reason(source: str) -> None:
    reason = next(r for s, r in BOMBS.values() if s == source)
    with pytest.raises(TemplateProblem) as refused:
        templates.render_text(source, fields(first_name="Grace"), "Step 1 body")
    assert refused.value.message.startswith("Step 1 body: ")
    assert reason in refused.value.message


def test_lipsum_is_not_available_to_templates() -> None:
    with pytest.raises(TemplateProblem, match=r"\{\{ lipsum \}\}"):
        render("{{ lipsum(1000000, html=False) }}")


def test_everyday_templates_stay_within_the_budget() -> None:
    source = (
        "{% macro greet(name) %}Hi {{ name | title }}{% endmacro %}{{ greet(first_name) }}, "
        "{% for tag in tags %}{{ loop.index }}. {{ tag | upper }} {% endfor %}"
        "{{ '%.1f' % 2.25 }} {{ '{:>6}'.format('x') }} {{ 'a-b'.split('-') | join('+') }} "
        "{{ range(3) | list | sum }} {{ (first_name ~ '!') | replace('!', '?') }}\n{{ signature }}"
    )
    text = render(source, first_name="grace", fields={"tags": ["cobol", "navy"]})
    assert text == "Hi Grace, 1. COBOL 2. NAVY 2.2      x a+b 3 grace?\n-- Ada"
    long_body = "word " * 19_000
    assert render(long_body) == long_body


def test_a_template_over_budget_is_refused_at_save_without_recipients() -> None:
    with pytest.raises(TemplateProblem, match=r"^Step 2 body: the template is over its render"):
        templates.check_budget("{{ (['x' * 99999] * 2) | join }}", "Step 2 body")
    # A name no recipient has yet is left to the check at start.
    templates.check_budget("{{ nickname * 3 }} {{ first_name * 3 }}", "Step 2 body")


# Property: a subject is one clean line, or refused -------------------------------------------

# Literal text without "{" cannot open a Jinja tag, so every tag is one we put there.
literal = st.text(st.characters(exclude_characters="{"), max_size=40)
value = st.text(max_size=60)


@settings(max_examples=300, deadline=None)
@given(prefix=literal, suffix=literal, first_name=value, company=value, custom=value)
def test_a_rendered_subject_never_contains_cr_lf_or_nul(
    prefix: str, suffix: str, first_name: str, company: str, custom: str
) -> None:
    source = prefix + "{{ first_name | default('there') }} {{ company }} {{ custom }}" + suffix
    merged = fields(first_name=first_name, company=company, fields={"custom": custom})
    try:
        subject = templates.render_header(source, merged, "Step 1 subject")
    except TemplateProblem:
        return
    assert not any(char in subject for char in "\r\n\0")
    assert subject == subject.strip()
    assert 0 < len(subject) <= templates.MAX_SUBJECT_LENGTH
