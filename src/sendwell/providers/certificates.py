"""When an IMAP/SMTP server's TLS certificate expires, read from a verified connection."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from sendwell.providers.mail_server import Endpoint, Security


def certificate_expiry(
    endpoint: Endpoint,
    protocol: Literal["smtp", "imap"],
    context: ssl.SSLContext,
    timeout: float,
) -> datetime | None:
    """The notAfter of the certificate the server presents (verified as for sending)."""
    if endpoint.security is Security.TLS:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=endpoint.host) as tls,
        ):
            return _not_after(tls.getpeercert())
    if protocol == "smtp":
        with smtplib.SMTP(endpoint.host, endpoint.port, timeout=timeout) as client:
            client.starttls(context=context)
            return _not_after(client.sock.getpeercert())  # type: ignore[union-attr]
    client_imap = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=timeout)
    try:
        client_imap.starttls(ssl_context=context)
        return _not_after(client_imap.sock.getpeercert())  # type: ignore[attr-defined]
    finally:
        client_imap.shutdown()


def _not_after(certificate: Mapping[str, object] | None) -> datetime | None:
    value = (certificate or {}).get("notAfter")
    if not isinstance(value, str):
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(value), tz=UTC)
