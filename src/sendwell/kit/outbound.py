"""Where Sendwell may connect when a user names the host: one policy for every such connection.

Webhook endpoints and IMAP/SMTP servers are chosen by users, so without a policy any member
could make the server connect to its own loopback services, the private network or a cloud
metadata address, and read what answers. The host is resolved and every address it resolves
to is checked; the connection then goes to an address that was checked, on every connection
(a DNS answer that changes between the check and the connection cannot redirect it).

Refused: loopback, private, link-local, shared (CGNAT), multicast, reserved and documentation
ranges, in IPv4 and IPv6, and IPv6 forms that carry an IPv4 address (IPv4-mapped and
-compatible, 6to4, NAT64) when that IPv4 address is one of them. The administrator can allow
named hosts or ranges (`SENDWELL_OUTBOUND_ALLOW`) for company mail servers and local tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from sendwell.kit.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# IPv6 prefixes whose last 32 bits (or bits 16-48, for 6to4) are an IPv4 address.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# What the legacy SENDWELL_WEBHOOKS_ALLOW_PRIVATE=1 allowed: loopback and private networks.
LOCAL_NETWORKS = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


class DestinationRefused(InvalidInput):
    """A host a user named is not one Sendwell will connect to."""

    code = "destination_refused"


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, in any of the forms that route to it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _IPV4_COMPATIBLE or any(address in prefix for prefix in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address, and for the IPv4 address it carries."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return True


@dataclass(frozen=True)
class OutboundPolicy:
    """Public addresses, plus the hosts and ranges the administrator allowed."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, allow: str) -> OutboundPolicy:
        """From a comma-separated list of host names, addresses and ranges (CIDR)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in (part.strip().lower().rstrip(".") for part in allow.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if any(char.isspace() or char in "/:@" for char in item):
                    raise ValueError(
                        f"“{item}” is neither a host name nor an address range."
                    ) from None
                hosts.add(item)
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.allowed_hosts:
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)):
            candidates.append(inner)
        allowed = any(a in network for a in candidates for network in self.allowed_networks)
        return allowed or is_public(address)

    def resolve(self, host: str, port: int, *, what: str) -> list[IPAddress]:
        """Every address of `host`, each checked; refused if any one is not permitted."""
        addresses = _resolve(host, port)
        for address in addresses:
            if not self.permits(host, address):
                raise DestinationRefused(
                    f"{host} resolves to {address}, a loopback, private or reserved address; "
                    f"{what} only go to public addresses unless the administrator allows the "
                    "host in SENDWELL_OUTBOUND_ALLOW."
                )
        return addresses

    def connect(self, host: str, port: int, timeout: float | None, *, what: str) -> socket.socket:
        """A TCP connection to a checked address of `host` (the first that answers)."""
        last: OSError | None = None
        for address in self.resolve(host, port, what=what):
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect((str(address), port))
            except OSError as error:
                sock.close()
                last = error
                continue
            return sock
        raise last or OSError(f"{host} has no addresses")


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise DestinationRefused(f"The host {host} cannot be found ({error}).") from None
    found = _unique(ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0]) for answer in answers)
    if not found:
        raise DestinationRefused(f"The host {host} has no addresses.")
    return found


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for address in addresses:
        if address not in found:
            found.append(address)
    return found
