"""HMAC-SHA256 signatures over a timestamp and the body, and their verification.

The header is ``Sendwell-Signature: t=<unix seconds>,v1=<hex digest>``; the digest covers
``"<t>." + body``. A receiver recomputes it with the endpoint's secret and refuses a timestamp
outside its replay window, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Sendwell-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The request was not signed with this secret, or was signed too long ago."""


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for a body sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a received header; return its timestamp or raise `InvalidSignature`."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("The signature header has no timestamp (t=…).") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature(
            f"The signature's timestamp is more than {tolerance_seconds} seconds away from now."
        )
    expected = _digest(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise InvalidSignature("The signature does not match the body and the secret.")
    return timestamp


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
