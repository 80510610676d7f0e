"""Signatures a receiver can verify, and the forgeries and replays it refuses."""

from __future__ import annotations

import pytest

from sendwell.webhooks.signing import InvalidSignature, signature_header, verify_signature

SECRET = "whsec_" + "k" * 32
BODY = b'{"id":"evt_1","type":"campaign.started"}'
NOW = 1_800_000_000


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, BODY, header, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    ("secret", "body"),
    [("whsec_" + "x" * 32, BODY), (SECRET, BODY.replace(b"started", b"paused"))],
    ids=["other secret", "changed body"],
)
def test_another_secret_or_a_changed_body_is_refused(secret: str, body: bytes) -> None:
    header = signature_header(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(secret, body, header, now=NOW)


def test_a_replay_outside_the_window_is_refused() -> None:
    header = signature_header(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="more than 300 seconds"):
        verify_signature(SECRET, BODY, header, now=NOW + 301)
    with pytest.raises(InvalidSignature, match="more than 60 seconds"):
        verify_signature(SECRET, BODY, header, now=NOW - 61, tolerance_seconds=60)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    digest = signature_header(SECRET, BODY, NOW).split("v1=")[1]
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(SECRET, BODY, f"t={NOW + 5},v1={digest}", now=NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=soon,v1=abc"])
def test_a_header_without_a_timestamp_is_refused(header: str) -> None:
    with pytest.raises(InvalidSignature, match="no timestamp"):
        verify_signature(SECRET, BODY, header, now=NOW)


def test_any_matching_v1_is_accepted() -> None:
    good = signature_header(SECRET, BODY, NOW).split("v1=")[1]
    assert verify_signature(SECRET, BODY, f"t={NOW},v1=deadbeef,v1={good}", now=NOW) == NOW
