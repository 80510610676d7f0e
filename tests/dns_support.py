"""A real DNS server on loopback (dnslib) answering from a zone the test edits, the way an
administrator's edits would change what resolvers answer. Sendwell is pointed at it with
SENDWELL_DNS_SERVERS."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSError
from dnslib.server import DNSLogger, DNSServer


class Zone:
    """A dnslib resolver over a zone the test edits: (name, type) -> records."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.silent: set[str] = set()
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        with self._lock:
            self.queries[name] += 1
            if any(name == s or name.endswith("." + s) for s in self.silent):
                raise DNSError("deliberately unanswered")
            answers = list(self.records.get((name, kind), []))
            known = any(n == name for n, _kind in self.records)
        reply = request.reply()
        for rdata in answers:
            reply.add_answer(RR(name, request.q.qtype, rdata=rdata, ttl=60))
        if not answers and not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def set(self, name: str, kind: str, *values: Any) -> None:
        with self._lock:
            self.records[(name, kind)] = list(values)

    def drop(self, name: str, kind: str) -> None:
        with self._lock:
            self.records.pop((name, kind), None)


@contextmanager
def serving_zone() -> Iterator[tuple[Zone, int]]:
    """An empty zone served on a free UDP port of 127.0.0.1: (zone, port)."""
    resolver = Zone()
    server = DNSServer(
        resolver, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda _line: None)
    )
    thread = threading.Thread(
        target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield resolver, server.server.server_address[1]
    finally:
        server.stop()
        thread.join()
        server.server.server_close()
