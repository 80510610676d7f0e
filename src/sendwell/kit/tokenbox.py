"""Encryption at rest for provider tokens: MultiFernet, newest key first, old keys still read."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenBoxError(Exception):
    """A stored secret cannot be read with any configured key."""


class TokenBox:
    """Encrypts with the first key; decrypts with any; rotates ciphertext to the first key."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("TokenBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenBoxError(
                "A stored token cannot be decrypted with SENDWELL_TOKEN_KEYS; "
                "was a key removed before `sendwell keys rotate` ran?"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """The same secret re-encrypted under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenBoxError(
                "A stored token cannot be decrypted with SENDWELL_TOKEN_KEYS."
            ) from None
