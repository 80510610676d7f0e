"""Where webhooks may go: http(s) only, and never to loopback or private networks.

The host is resolved and every address checked at registration and again before each
delivery; the request then goes to the address that was checked (so a DNS answer that changes
between the check and the connection cannot redirect it), and redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from sendwell.kit.errors import InvalidInput

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def resolve_destination(url: str, *, allow_private: bool) -> Destination:
    """Check the URL, resolve its host and check every address it resolves to."""
    parts = check_url_shape(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise UnsafeDestination(
                    f"{host} resolves to {address}, a loopback, private or reserved address; "
                    "webhooks only go to public addresses."
                )
    return Destination(url=url.strip(), host=host, address=addresses[0])


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnsafeDestination(f"The host {host} cannot be found ({error}).") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise UnsafeDestination(f"The host {host} has no addresses.")
    return found
