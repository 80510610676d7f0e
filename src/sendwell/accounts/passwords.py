"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from sendwell.kit.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 1024
# zxcvbn's score: 2 and above means more than about a million guesses, even for an attacker
# who tries leaked and common passwords, words, names, dates and keyboard patterns first.
MIN_STRENGTH = 2
STRENGTH_CHECKED_LENGTH = 72  # zxcvbn's own limit; a longer password is judged by its start

_hasher = PasswordHasher()


def check_password_rules(password: str, email: str) -> None:
    """Refuse a weak password with a sentence that says how to pick a better one."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"Choose a password of at least {MIN_LENGTH} characters.", code="weak_password"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"Choose a password of at most {MAX_LENGTH} characters.", code="weak_password"
        )
    lowered = password.lower()
    if lowered == email.lower() or lowered == email.split("@")[0].lower():
        raise InvalidInput(
            "Choose a password that is not your email address.", code="weak_password"
        )
    if len(set(password)) < 4:
        raise InvalidInput(
            "Choose a password with more variety than a few repeated characters.",
            code="weak_password",
        )
    _refuse_guessable(password, email)


def _refuse_guessable(password: str, email: str) -> None:
    """Refuse common and breached passwords, offline, with zxcvbn's bundled lists."""
    local_part = email.split("@")[0]
    judged = zxcvbn(password[:STRENGTH_CHECKED_LENGTH], user_inputs=[email, local_part])
    if judged["score"] < MIN_STRENGTH:
        raise InvalidInput(
            "Choose a password that is harder to guess: this one is a common password or close "
            "to one. A few unrelated words work well.",
            code="weak_password",
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    """True when the password matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the address is unknown, so both answers take the same time.

    Made on first use, not at import: an argon2 hash takes 64 MiB for a moment, which every
    process importing this module (a sending worker too) would otherwise keep as its peak.
    """
    return _hasher.hash("sendwell-timing-equaliser")


def equalise_timing() -> None:
    """Make the unknown-address hash now, so that even a process's first sign-in with an
    unknown address takes as long as one with a known address (the web app calls this as
    it starts)."""
    _dummy_hash()


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
