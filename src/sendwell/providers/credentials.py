"""What a mail host call is made with: an OAuth access token, or a mail server's login.

Each host checks it was given the kind it works with, so a mix-up is a clear error rather
than a password sent as a bearer token (or the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sendwell.providers.errors import ProviderError
from sendwell.providers.mail_server import ServerLogin


@dataclass(frozen=True)
class AccessToken:
    """An OAuth bearer token for one mailbox; its repr never shows it."""

    bearer: str = field(repr=False)


Credential = AccessToken | ServerLogin


def bearer_of(credential: Credential, host: str) -> str:
    """The bearer token an OAuth host sends, or why this credential cannot be used there."""
    if isinstance(credential, AccessToken):
        return credential.bearer
    raise ProviderError(
        f"{host} accounts are reached with an OAuth access token, not server settings and a "
        "password.",
        code="wrong_credential",
    )


def login_of(credential: Credential, host: str) -> ServerLogin:
    """The server login an IMAP/SMTP host signs in with, or why this credential is not one."""
    if isinstance(credential, ServerLogin):
        return credential
    raise ProviderError(
        f"{host} accounts are reached with their server settings and password, not an OAuth "
        "access token.",
        code="wrong_credential",
    )
