"""Provider discovery against a real DNS server on loopback, with a zone made for the tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dnslib import MX, QTYPE, RCODE, RR, DNSError
from dnslib.server import DNSLogger, DNSServer

from sendwell.kit.logging import configure_logging
from sendwell.providers.discovery import DiscoveredProvider, ProviderDiscovery

MX_RECORDS: dict[str, list[tuple[int, str]]] = {
    "google-mx.example": [(10, "alt1.aspmx.l.google.com"), (1, "aspmx.l.google.com")],
    "workspace.example": [(1, "smtp.google.com")],
    "contoso.example": [(0, "contoso-com.mail.protection.outlook.com")],
    "unrelated.example": [(10, "mx1.mailhost.example"), (20, "mx2.mailhost.example")],
    "lookalike.example": [(10, "mx.evilgoogle.com"), (20, "google.com.evil.net")],
    # The lowest preference is tried first, but a backup exchanger at Google still decides.
    "backup.example": [(5, "mx.inhouse.example"), (50, "alt2.aspmx.l.google.com")],
}
NO_MX = "no-mx.example"
SILENT = "silent.example"
SERVFAIL = "servfail.example"
SHORT_TIMEOUT = 0.3


class ZoneResolver:
    """A dnslib resolver over MX_RECORDS that counts the queries it receives per name."""

    def __init__(self) -> None:
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        name = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries[name] += 1
        if name == SILENT:
            # dnslib's handler drops the request on a DNSError, so the client hears nothing.
            raise DNSError("deliberately unanswered")
        reply = request.reply()
        if name in MX_RECORDS:
            if request.q.qtype == QTYPE.MX:
                for preference, exchanger in MX_RECORDS[name]:
                    reply.add_answer(RR(name, QTYPE.MX, rdata=MX(exchanger, preference), ttl=60))
        elif name == SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
        elif name != NO_MX:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@dataclass
class FakeDns:
    port: int
    resolver: ZoneResolver

    def discovery(self, **overrides: Any) -> ProviderDiscovery:
        options: dict[str, Any] = {
            "nameservers": ["127.0.0.1"],
            "port": self.port,
            "timeout_seconds": SHORT_TIMEOUT,
        }
        options.update(overrides)
        return ProviderDiscovery(**options)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_dns() -> Iterator[FakeDns]:
    """A UDP DNS server on a free loopback port, serving the test zone."""
    resolver = ZoneResolver()
    server = DNSServer(
        resolver, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda _line: None)
    )
    # A short poll interval keeps shutdown, and so each test's teardown, quick.
    thread = threading.Thread(
        target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield FakeDns(port=server.server.server_address[1], resolver=resolver)
    server.stop()
    thread.join()
    server.server.server_close()


def _dead_port() -> int:
    """A loopback UDP port that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ada@google-mx.example", DiscoveredProvider.GOOGLE),
        ("ada@workspace.example", DiscoveredProvider.GOOGLE),
        ("ada@contoso.example", DiscoveredProvider.MICROSOFT),
        ("ada@backup.example", DiscoveredProvider.GOOGLE),
        ("ada@unrelated.example", DiscoveredProvider.UNKNOWN),
        ("ada@lookalike.example", DiscoveredProvider.UNKNOWN),
        ("ada@missing.example", DiscoveredProvider.UNKNOWN),
        (f"ada@{NO_MX}", DiscoveredProvider.UNKNOWN),
        (f"ada@{SERVFAIL}", DiscoveredProvider.UNKNOWN),
    ],
)
def test_classifies_domains_by_their_mx_records(
    fake_dns: FakeDns, address: str, expected: DiscoveredProvider
) -> None:
    assert fake_dns.discovery().discover(address) is expected


def test_domain_is_taken_after_the_last_at_lower_cased_without_trailing_dot(
    fake_dns: FakeDns,
) -> None:
    discovery = fake_dns.discovery()
    assert discovery.discover('"a@b"@Contoso.EXAMPLE.') is DiscoveredProvider.MICROSOFT
    assert fake_dns.resolver.queries["contoso.example"] == 1


def test_an_unanswered_lookup_times_out_quickly_and_is_retried_next_time(
    fake_dns: FakeDns,
) -> None:
    discovery = fake_dns.discovery()
    started = time.monotonic()
    assert discovery.discover(f"ada@{SILENT}") is DiscoveredProvider.UNKNOWN
    assert time.monotonic() - started < SHORT_TIMEOUT + 1.0
    first = fake_dns.resolver.queries[SILENT]
    assert first >= 1
    assert discovery.discover(f"ada@{SILENT}") is DiscoveredProvider.UNKNOWN
    assert fake_dns.resolver.queries[SILENT] > first


def test_servfail_is_not_cached(fake_dns: FakeDns) -> None:
    discovery = fake_dns.discovery()
    discovery.discover(f"ada@{SERVFAIL}")
    first = fake_dns.resolver.queries[SERVFAIL]
    discovery.discover(f"ada@{SERVFAIL}")
    assert fake_dns.resolver.queries[SERVFAIL] > first


@pytest.mark.parametrize("domain", ["missing.example", NO_MX, "google-mx.example"])
def test_answers_are_cached_per_domain(fake_dns: FakeDns, domain: str) -> None:
    discovery = fake_dns.discovery()
    first = discovery.discover(f"ada@{domain}")
    assert discovery.discover(f"grace@{domain}") is first
    assert fake_dns.resolver.queries[domain] == 1


def test_cache_entries_expire_after_the_ttl(fake_dns: FakeDns) -> None:
    clock = FakeClock()
    discovery = fake_dns.discovery(cache_ttl_seconds=60, clock=clock)
    discovery.discover("ada@contoso.example")
    clock.now += 59
    discovery.discover("ada@contoso.example")
    assert fake_dns.resolver.queries["contoso.example"] == 1
    clock.now += 1
    assert discovery.discover("ada@contoso.example") is DiscoveredProvider.MICROSOFT
    assert fake_dns.resolver.queries["contoso.example"] == 2


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ada@gmail.test", DiscoveredProvider.GOOGLE),
        ("ada@corp.gmail.test", DiscoveredProvider.GOOGLE),
        ("ada@outlook.test", DiscoveredProvider.MICROSOFT),
        ("ada@contoso.outlook.test", DiscoveredProvider.MICROSOFT),
    ],
)
def test_sandbox_domains_need_no_dns(address: str, expected: DiscoveredProvider) -> None:
    discovery = ProviderDiscovery(
        nameservers=["127.0.0.1"], port=_dead_port(), timeout_seconds=SHORT_TIMEOUT, sandbox=True
    )
    assert discovery.discover(address) is expected


def test_sandbox_domains_are_ordinary_domains_outside_the_sandbox(fake_dns: FakeDns) -> None:
    assert fake_dns.discovery().discover("ada@gmail.test") is DiscoveredProvider.UNKNOWN
    assert fake_dns.resolver.queries["gmail.test"] == 1


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ada@gmail.com", DiscoveredProvider.GOOGLE),
        ("ada@GoogleMail.com", DiscoveredProvider.GOOGLE),
        ("ada@outlook.com", DiscoveredProvider.MICROSOFT),
        ("ada@hotmail.com", DiscoveredProvider.MICROSOFT),
        ("ada@live.com", DiscoveredProvider.MICROSOFT),
        ("ada@msn.com", DiscoveredProvider.MICROSOFT),
    ],
)
def test_consumer_domains_need_no_dns(
    fake_dns: FakeDns, address: str, expected: DiscoveredProvider
) -> None:
    assert fake_dns.discovery().discover(address) is expected
    assert not fake_dns.resolver.queries
    dead = ProviderDiscovery(
        nameservers=["127.0.0.1"], port=_dead_port(), timeout_seconds=SHORT_TIMEOUT
    )
    assert dead.discover(address) is expected


def test_an_unreachable_server_gives_unknown() -> None:
    discovery = ProviderDiscovery(
        nameservers=["127.0.0.1"], port=_dead_port(), timeout_seconds=SHORT_TIMEOUT
    )
    assert discovery.discover("ada@contoso.example") is DiscoveredProvider.UNKNOWN


def test_each_lookup_logs_domain_result_and_duration_but_not_the_address(
    fake_dns: FakeDns, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    discovery = fake_dns.discovery()
    discovery.discover("ada.lovelace@contoso.example")
    discovery.discover("ada.lovelace@contoso.example")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    lookups = [line for line in lines if line["event"] == "mx_lookup"]
    assert len(lookups) == 1
    assert lookups[0]["domain"] == "contoso.example"
    assert lookups[0]["result"] == "microsoft"
    assert isinstance(lookups[0]["duration_ms"], float)
    assert "ada.lovelace" not in json.dumps(lines)
