"""Recipient addresses: the per-domain shortcut decides exactly as email-validator does."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from sendwell.campaigns.recipients import normalized_address

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LOCAL = st.one_of(
    st.text(alphabet=ATEXT + ".", min_size=0, max_size=70),
    st.text(min_size=0, max_size=20),  # anything at all: quotes, spaces, Unicode, '@'
)
DOMAIN = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "Example.COM",
            "mail.example.co.uk",
            "bücher.example",
            "münchen.de",
            "localhost",
            "example.test",
            "example.invalid",
            "-bad.com",
            "bad-.com",
            "a..b.com",
            "123.com",
            "[127.0.0.1]",
            "x" * 64 + ".com",
            ("a" * 60 + ".") * 4 + "com",
            "",
        ]
    ),
    st.text(min_size=0, max_size=30),
)


def library_says(address: str, allow_test_domains: bool) -> str | None:
    try:
        checked = validate_email(
            address.strip(), check_deliverability=False, test_environment=allow_test_domains
        )
    except EmailNotValidError:
        return None
    return checked.normalized.lower()


def ours(address: str, allow_test_domains: bool) -> str | None:
    try:
        return normalized_address(address, allow_test_domains=allow_test_domains)
    except EmailNotValidError:
        return None


@settings(max_examples=400, deadline=None)
@given(local=LOCAL, domain=DOMAIN, allow_test_domains=st.booleans())
def test_same_verdict_and_form_as_the_library(
    local: str, domain: str, allow_test_domains: bool
) -> None:
    address = f"{local}@{domain}"
    assert ours(address, allow_test_domains) == library_says(address, allow_test_domains)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("bob+tag@bücher.example", "bob+tag@bücher.example"),
    ],
)
def test_stored_form(raw: str, stored: str) -> None:
    assert normalized_address(raw) == stored


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("no-at-sign.example.com", "@-sign"),
        ("ann@example.test", "special-use"),
        ("ann..lee@example.com", "period"),
        ("ann lee@example.com", "invalid characters before the @-sign: SPACE"),
        ("ann@exa_mple.com", "after the @-sign contains invalid characters"),
    ],
)
def test_refusals_say_why(raw: str, words: str) -> None:
    with pytest.raises(EmailNotValidError, match=words):
        normalized_address(raw)
