"""The DNS records that decide whether a sending domain's mail is trusted: MX and TXT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver


@dataclass(frozen=True)
class Answer:
    """What DNS said about one name: its records (empty when it has none), or why it could
    not say (`failure`: a timeout or server failure is no answer about the domain)."""

    records: tuple[str, ...] = ()
    failure: str = ""


def parse_servers(text: str) -> tuple[list[str] | None, int]:
    """ "192.0.2.53, 192.0.2.54:5353" as dnspython wants it: addresses and one port. Empty
    text means the system's resolvers (None)."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        return None, 53
    addresses, ports = [], set()
    for entry in entries:
        host, port = entry, "53"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not an address with an optional :port")
        addresses.append(host)
        ports.add(int(port))
    if len(ports) > 1:
        raise ValueError("all DNS servers must use the same port")
    return addresses, ports.pop()


class DomainDns:
    """Reads MX and TXT records with dnspython, from the system's resolvers or named ones."""

    def __init__(
        self, *, nameservers: list[str] | None = None, port: int = 53, timeout_seconds: float = 2.0
    ) -> None:
        self._nameservers = nameservers
        self._port = port
        self._timeout_seconds = timeout_seconds

    def mx(self, domain: str) -> Answer:
        """The domain's mail exchangers, lowest preference first."""
        found = self._resolve(domain, "MX")
        if isinstance(found, Answer):
            return found
        exchangers = sorted(
            (r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in found
        )
        return Answer(tuple(f"{name} ({preference})" for preference, name in exchangers))

    def txt(self, name: str) -> Answer:
        """The name's TXT records, each one string (its character-strings joined, RFC 7208
        section 3.3), following a CNAME as resolvers do (Microsoft's DKIM records are CNAMEs)."""
        found = self._resolve(name, "TXT")
        if isinstance(found, Answer):
            return found
        return Answer(tuple(b"".join(r.strings).decode("utf-8", errors="replace") for r in found))

    def _resolve(self, name: str, kind: str) -> Answer | dns.resolver.Answer:
        # dnspython is imported on first use: every `sendwell` command starts without it.
        import dns.exception
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=self._nameservers is None)
        if self._nameservers is not None:
            resolver.nameservers = list(self._nameservers)
        resolver.port = self._port
        resolver.lifetime = self._timeout_seconds
        try:
            return resolver.resolve(f"{name.rstrip('.')}.", kind)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return Answer()
        except dns.exception.Timeout:
            return Answer(failure="no answer in time")
        except dns.exception.DNSException as error:
            return Answer(failure=type(error).__name__)
