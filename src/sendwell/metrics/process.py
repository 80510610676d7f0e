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


# The changes this process committed, counted from their domain events once their unit of
# work commits (`metrics/subscribers.py`): a change is committed by exactly one process, so
# the sum over every process's /metrics counts each once.
MAILBOX_CHANGES = Counter(
    "sendwell_mailbox_changes",
    "Email account status changes committed by this process, by kind (connected, "
    "reauth_required, reauthenticated, disconnected…).",
    ["kind"],
    registry=PROCESS_REGISTRY,
)
CAMPAIGN_PAUSES = Counter(
    "sendwell_campaign_pauses",
    "Campaign pauses committed by this process, by reason (user, mailbox_reauth_required, "
    "send_errors, bounce_rate…).",
    ["reason"],
    registry=PROCESS_REGISTRY,
)
RECIPIENTS_FINISHED = Counter(
    "sendwell_recipients_finished",
    "Recipients whose sequence a send's outcome ended, committed by this process, by status "
    "(replied, bounced, unsubscribed, failed…).",
    ["status"],
    registry=PROCESS_REGISTRY,
)
