"""Counters and histograms kept by this process (each process exposes its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

PROVIDER_REQUEST_SECONDS = Histogram(
    "sendwell_provider_request_seconds",
    "Time for one request to a mail provider (one HTTP request, or one SMTP or IMAP "
    "conversation for IMAP/SMTP accounts), by provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60),
    registry=PROCESS_REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "sendwell_provider_errors",
    "Failed mail-provider requests, by provider and type (connect, transport, no_answer, "
    "or http_<status> for an error answer; for IMAP/SMTP accounts the error's code).",
    ["provider", "type"],
    registry=PROCESS_REGISTRY,
)


def provider_label(provider: str) -> str:
    return provider.lower().replace(" ", "_")
