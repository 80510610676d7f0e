"""Random bearer secrets and their stored form: SHA-256, since unlike passwords they are long."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str = "") -> str:
    """A fresh 256-bit url-safe secret, optionally prefixed so leaks are recognisable."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
