"""The only error types the rest of Sendwell ever sees from a mail host.

The provider modules translate every vendor failure into one of these before it leaves
``providers/``; the host protocols (``providers.base``), the credentials and the mail server
logins all raise them, so they sit in a module of their own that imports nothing.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A failure at the mail host, already classified. ``code`` is the vendor's, for details."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AuthRevoked(ProviderError):
    """The grant is dead (revoked, expired, password changed): the user must reauthenticate."""


class InsufficientScope(ProviderError):
    """The grant lacks permissions Sendwell needs."""

    def __init__(self, message: str, *, missing: frozenset[str], code: str = "") -> None:
        super().__init__(message, code=code)
        self.missing = missing


class AdminApprovalRequired(AuthRevoked):
    """The organisation requires an administrator to approve the app first."""


class ConsentDeclined(ProviderError):
    """The user cancelled on the provider's sign-in or consent page."""


class RateLimited(ProviderError):
    """The host asks us to slow down; ``retry_after`` is seconds when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, code: str = "") -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Transient(ProviderError):
    """A passing failure (5xx, connection refused before sending): try again later."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class SendingBlocked(ProviderError):
    """The host refuses to send from this mailbox until its owner acts (mailbox full, account
    restricted): sending from it stops, with the host's reason shown, until resumed."""


class OutcomeUnknown(ProviderError):
    """The request may have reached the host: reconcile through the Sent folder first."""


class RecipientRejected(ProviderError):
    """The host refused a recipient address; that recipient fails, the campaign goes on."""
