"""Merge fields are escaped in HTML bodies: a recipient's data can never become markup.

Standard fields and custom CSV columns alike, whatever they contain, appear in an HTML body as
text — exactly what the template says, with each value escaped — while the text body and the
subject keep the values as they are.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from sendwell.campaigns.templates import TemplateProblem, merge_fields, render_step

markup = st.lists(
    st.one_of(
        st.text(max_size=10),
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                '"><img src=x onerror=alert(1)>',
                "</p><a href='javascript:alert(1)'>x</a>",
                "&amp;",
                "{{ 7*7 }}",
                "{% raw %}",
                "<!--",
            ]
        ),
    ),
    min_size=1,
    max_size=5,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(first_name=markup, company=markup, note=markup)
def test_merge_fields_in_html_bodies_are_escaped(first_name: str, company: str, note: str) -> None:
    fields = merge_fields(
        {"first_name": first_name, "company": company, "fields": {"note": note}}, {}
    )
    html = '<p class="greeting">Hi {{ first_name }} of {{ company }}</p><p>{{ note }}</p>'
    try:
        step = render_step("Hello", "Hi {{ first_name }}: {{ note }}", html, fields, "Step 1")
    except TemplateProblem:
        return  # a value that is empty after trimming is missing: refused, nothing rendered
    expected = (
        f'<p class="greeting">Hi {escape(fields["first_name"])} of {escape(fields["company"])}'
        f"</p><p>{escape(fields['note'])}</p>"
    )
    assert step.body_html == expected
    assert step.body == f"Hi {fields['first_name']}: {fields['note']}"
