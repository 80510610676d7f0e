"""Which mail host serves an address: well-known domains first, then the domain's MX records."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sendwell.kit.logging import get_logger

if TYPE_CHECKING:
    import dns.resolver

log = get_logger(__name__)


class DiscoveredProvider(enum.StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    UNKNOWN = "unknown"


CONSUMER_DOMAINS: dict[str, DiscoveredProvider] = {
    "gmail.com": DiscoveredProvider.GOOGLE,
    "googlemail.com": DiscoveredProvider.GOOGLE,
    "outlook.com": DiscoveredProvider.MICROSOFT,
    "hotmail.com": DiscoveredProvider.MICROSOFT,
    "live.com": DiscoveredProvider.MICROSOFT,
    "msn.com": DiscoveredProvider.MICROSOFT,
}
SANDBOX_SUFFIXES: tuple[tuple[str, DiscoveredProvider], ...] = (
    ("gmail.test", DiscoveredProvider.GOOGLE),
    ("outlook.test", DiscoveredProvider.MICROSOFT),
)
# Microsoft 365 tenants' *.mail.protection.outlook.com falls under outlook.com.
EXCHANGER_SUFFIXES: tuple[tuple[str, DiscoveredProvider], ...] = (
    ("google.com", DiscoveredProvider.GOOGLE),
    ("googlemail.com", DiscoveredProvider.GOOGLE),
    ("outlook.com", DiscoveredProvider.MICROSOFT),
    ("hotmail.com", DiscoveredProvider.MICROSOFT),
    ("live.com", DiscoveredProvider.MICROSOFT),
)


@dataclass(frozen=True)
class _Lookup:
    provider: DiscoveredProvider
    # A transient fault (timeout, SERVFAIL) is not an answer about the domain, so it is retried.
    cacheable: bool
    failure: str | None = None


def domain_of(address: str) -> str:
    """The lower-cased domain after the last '@', without a trailing dot."""
    return address.rpartition("@")[2].strip().lower().removesuffix(".")


def _within(name: str, suffix: str) -> bool:
    # Label boundaries: evilgoogle.com is not under google.com.
    return name == suffix or name.endswith("." + suffix)


def _match(
    name: str, suffixes: tuple[tuple[str, DiscoveredProvider], ...]
) -> DiscoveredProvider | None:
    for suffix, provider in suffixes:
        if _within(name, suffix):
            return provider
    return None


class ProviderDiscovery:
    """Classifies addresses by mail host, caching each domain's MX verdict for a while."""

    def __init__(
        self,
        *,
        nameservers: list[str] | None = None,
        port: int = 53,
        timeout_seconds: float = 2.0,
        sandbox: bool = False,
        cache_ttl_seconds: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nameservers = nameservers
        self._port = port
        self._timeout_seconds = timeout_seconds
        self._sandbox = sandbox
        self._cache_ttl_seconds = cache_ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, DiscoveredProvider]] = {}
        self._lock = threading.Lock()

    def discover(self, address: str) -> DiscoveredProvider:
        """The provider behind an address, or UNKNOWN when DNS cannot tell; never raises."""
        domain = domain_of(address)
        if not domain:
            return DiscoveredProvider.UNKNOWN
        if self._sandbox and (found := _match(domain, SANDBOX_SUFFIXES)):
            return found
        if domain in CONSUMER_DOMAINS:
            return CONSUMER_DOMAINS[domain]
        cached = self._cached(domain)
        if cached is not None:
            return cached
        lookup = self._lookup_logged(domain)
        if lookup.cacheable:
            with self._lock:
                self._cache[domain] = (self._clock() + self._cache_ttl_seconds, lookup.provider)
        return lookup.provider

    def _cached(self, domain: str) -> DiscoveredProvider | None:
        with self._lock:
            entry = self._cache.get(domain)
            if entry is None:
                return None
            expires_at, provider = entry
            if self._clock() >= expires_at:
                del self._cache[domain]
                return None
            return provider

    def _lookup_logged(self, domain: str) -> _Lookup:
        started = time.perf_counter()
        lookup = self._lookup(domain)
        log.info(
            "mx_lookup",
            domain=domain,
            result=lookup.provider.value,
            failure=lookup.failure,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return lookup

    def _lookup(self, domain: str) -> _Lookup:
        # dnspython is imported on first use: every `sendwell` command starts without it.
        import dns.exception
        import dns.resolver

        try:
            answer = self._resolver().resolve(f"{domain}.", "MX")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return _Lookup(DiscoveredProvider.UNKNOWN, cacheable=True)
        except dns.exception.DNSException as error:
            return _Lookup(
                DiscoveredProvider.UNKNOWN, cacheable=False, failure=type(error).__name__
            )
        exchangers = sorted(
            (record.preference, record.exchange.to_text(omit_final_dot=True).lower())
            for record in answer
        )
        for _preference, exchanger in exchangers:
            if found := _match(exchanger, EXCHANGER_SUFFIXES):
                return _Lookup(found, cacheable=True)
        return _Lookup(DiscoveredProvider.UNKNOWN, cacheable=True)

    def _resolver(self) -> dns.resolver.Resolver:
        # Built per lookup so a changed resolv.conf is picked up and a missing one is a
        # DNSException (UNKNOWN) here rather than a crash at start-up.
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=self._nameservers is None)
        if self._nameservers is not None:
            resolver.nameservers = list(self._nameservers)
        resolver.port = self._port
        resolver.lifetime = self._timeout_seconds
        return resolver
