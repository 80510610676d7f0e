"""When an IMAP/SMTP server's TLS certificate expires, read from a verified connection."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from sendwell.kit.outbound import OutboundPolicy
from sendwell.providers.imap_mailbox import CheckedIMAP
from sendwell.providers.mail_server import Endpoint, Security
from sendwell.providers.smtp_submission import CheckedSMTP

WHAT = "certificate checks"


def certificate_expiry(
    endpoint: Endpoint,
    protocol: Literal["smtp", "imap"],
    context: ssl.SSLContext,
    timeout: float,
    outbound: OutboundPolicy,
) -> datetime | None:
    """The notAfter of the certificate the server presents (verified as for sending), on a
    connection the outbound policy checked, as every connection to a user's server is."""
    if endpoint.security is Security.TLS:
        raw = outbound.connect(endpoint.host, endpoint.port, timeout, what=WHAT)
        with raw, context.wrap_socket(raw, server_hostname=endpoint.host) as tls:
            return _not_after(tls.getpeercert())
    if protocol == "smtp":
        with CheckedSMTP(outbound, endpoint.host, endpoint.port, timeout=timeout) as client:
            client.starttls(context=context)
            return _not_after(client.sock.getpeercert())  # type: ignore[union-attr]
    client_imap = CheckedIMAP(outbound, endpoint.host, endpoint.port, timeout=timeout)
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
