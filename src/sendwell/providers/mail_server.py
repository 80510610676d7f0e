"""An IMAP/SMTP account's login: servers, security and credentials.

Every mail host call receives a ``Credential``; for these accounts it is a ``ServerLogin``
(built from the stored settings and the decrypted password), so the same lifecycle that
serves OAuth tokens serves passwords.
"""

from __future__ import annotations

import enum
import imaplib
import socket
import ssl
from dataclasses import dataclass, field

from sendwell.kit.outbound import DestinationRefused
from sendwell.providers.errors import ProviderError, Transient

PASSWORD_CHANGED_HINT = "Enter the new password (or app password) with Reauthenticate."  # noqa: S105


class Security(enum.StrEnum):
    TLS = "tls"
    STARTTLS = "starttls"


class AuthMethod(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    XOAUTH2 = "xoauth2"


SECURITY_LABELS = {Security.TLS: "SSL/TLS", Security.STARTTLS: "STARTTLS"}
AUTH_LABELS = {
    AuthMethod.PASSWORD: "Password or app password",
    AuthMethod.XOAUTH2: "OAuth 2.0 access token (XOAUTH2)",
}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: Security

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerLogin:
    """Everything needed to reach one mailbox over SMTP and IMAP; its repr hides the secret."""

    email: str
    username: str
    secret: str = field(repr=False)
    auth: AuthMethod
    smtp: Endpoint
    imap: Endpoint

    def xoauth2(self) -> str:
        """The SASL XOAUTH2 initial response (user and bearer token, ^A-separated)."""
        return f"user={self.username}\x01auth=Bearer {self.secret}\x01\x01"


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Certificates are always verified; ``ca_file`` adds a private CA to the system's."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def transport_failure(what: str, endpoint: Endpoint, error: BaseException) -> ProviderError:
    """A connection problem in words: nothing reached the server, so it is passing."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return Transient(
            f"The {what} server {endpoint} presented a certificate that cannot be trusted "
            f"({error.verify_message}).",
            code="tls_certificate",
        )
    if isinstance(error, ssl.SSLError):
        return Transient(
            f"The secure connection to the {what} server {endpoint} failed ({error.reason}). "
            "Check the port and the security setting.",
            code="tls",
        )
    if isinstance(error, socket.gaierror):
        return Transient(f"The {what} server name {endpoint.host} is not known.", code="dns")
    if isinstance(error, TimeoutError):
        return Transient(f"The {what} server {endpoint} did not answer in time.", code="timeout")
    if isinstance(error, ConnectionRefusedError):
        return Transient(
            f"The {what} server {endpoint} refused the connection. Check the port.",
            code="connect",
        )
    if isinstance(error, imaplib.IMAP4.error):
        # Something answered that is not an IMAP server; its words are not repeated.
        return ProviderError(
            f"The {what} server {endpoint} did not greet Sendwell as a mail server. "
            "Check the host and port.",
            code="imap_greeting",
        )
    return Transient(
        f"The connection to the {what} server {endpoint} failed ({type(error).__name__}).",
        code="connect",
    )


def refused_destination(error: DestinationRefused) -> ProviderError:
    """The outbound policy's refusal, as the provider error every caller handles."""
    return ProviderError(error.message, code="destination_refused")
