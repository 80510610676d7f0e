"""Where webhooks may go: http(s) only, to hosts the outbound policy permits.

The host is resolved and every address checked (`kit.outbound`) at registration and again
before each delivery; the request then goes to the address that was checked (so a DNS answer
that changes between the check and the connection cannot redirect it), and redirects are never
followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from sendwell.kit.errors import InvalidInput
from sendwell.kit.outbound import DestinationRefused, IPAddress, OutboundPolicy

MAX_URL_LENGTH = 2000


class UnsafeDestination(InvalidInput):
    """The URL is not one Sendwell will post to."""

    code = "unsafe_webhook_url"


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address to connect to."""

    url: str
    host: str
    address: IPAddress

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        parts = urlsplit(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{parts.port}" if parts.port else host


def check_url_shape(url: str) -> SplitResult:
    """Refuse anything but an absolute http(s) URL without credentials."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("Webhook URLs must start with https:// or http://.")
    if not parts.hostname:
        raise UnsafeDestination("The webhook URL has no host name.")
    if parts.username or parts.password:
        raise UnsafeDestination("Put no user name or password in the webhook URL.")
    try:
        _ = parts.port
    except ValueError:
        raise UnsafeDestination("The webhook URL's port is not a number from 1 to 65535.") from None
    return parts


def resolve_destination(url: str, policy: OutboundPolicy) -> Destination:
    """Check the URL, resolve its host and check every address it resolves to."""
    parts = check_url_shape(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = policy.resolve(host, port, what="webhooks")
    except DestinationRefused as error:
        raise UnsafeDestination(error.message) from None
    return Destination(url=url.strip(), host=host, address=addresses[0])
