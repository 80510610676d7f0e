"""Gauges read from the database at scrape time: the same answer from every process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.metrics import repository as repo
from sendwell.metrics.process import PROCESS_REGISTRY
from sendwell.models import CampaignStatus, DeliveryStatus, LedgerStatus, MailboxStatus


class DatabaseCollector(Collector):
    """Messages by outcome, claim lag, mailboxes and campaigns by status, webhook deliveries."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        with session_scope(self.factory) as db:
            ledger = repo.ledger_counts(db)
            mailboxes = repo.mailbox_counts(db)
            campaigns = repo.campaign_counts(db)
            deliveries = repo.webhook_delivery_counts(db)
            oldest = repo.oldest_due_step(db)
        yield _by_label(
            "sendwell_messages",
            "Steps in the send ledger by outcome: sent, failed, retry (waiting to be tried "
            "again), claimed or unknown (in a worker's hands).",
            "outcome",
            [s.value for s in LedgerStatus],
            ledger,
        )
        lag = GaugeMetricFamily(
            "sendwell_claim_lag_seconds",
            "Now minus the oldest due step of an active campaign (0 when nothing is overdue).",
        )
        lag.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        yield lag
        yield _by_label(
            "sendwell_mailboxes",
            "Email accounts by status.",
            "status",
            [s.value for s in MailboxStatus],
            mailboxes,
        )
        yield _by_label(
            "sendwell_campaigns",
            "Campaigns by status.",
            "status",
            [s.value for s in CampaignStatus],
            campaigns,
        )
        yield _by_label(
            "sendwell_webhook_deliveries",
            "Webhook deliveries kept in the outbox by outcome: delivered, failed (given up) or "
            "pending.",
            "outcome",
            [s.value for s in DeliveryStatus],
            deliveries,
        )


class ProcessCollector(Collector):
    """This process's own counters (provider latency and errors)."""

    def collect(self) -> Iterable[Metric]:
        return PROCESS_REGISTRY.collect()


def _by_label(
    name: str, documentation: str, label: str, values: list[str], counts: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family
