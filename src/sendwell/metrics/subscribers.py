"""Counting changes as they commit: the metrics hear the domain events.

A counter moves once the change's unit of work commits (`call_after_commit`), never for a
change that rolled back. Each process counts what it committed itself and shows it on its own
/metrics (`sendwell serve`, and `sendwell worker --metrics-port`); the scraper sums over the
processes, the way it sums the provider counters. What is true of the database now (accounts
and campaigns by status, the send ledger) is counted at scrape time instead
(`metrics/collector.py`): those are states, which no process's own tally could tell.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendwell.kit import events
from sendwell.kit.signals import call_after_commit
from sendwell.metrics.process import CAMPAIGN_PAUSES, MAILBOX_CHANGES, RECIPIENTS_FINISHED


def register() -> None:
    """Subscribe the counters to the changes they count."""
    events.subscribe(events.MailboxStatusChanged, count_mailbox_change)
    events.subscribe(events.CampaignStatusChanged, count_campaign_pause)
    events.subscribe(events.RecipientFinished, count_recipient_finished)


def count_mailbox_change(db: Session, event: events.MailboxStatusChanged) -> None:
    counter = MAILBOX_CHANGES.labels(kind=event.kind.value)
    call_after_commit(db, counter.inc)


def count_campaign_pause(db: Session, event: events.CampaignStatusChanged) -> None:
    if event.kind != "paused" or event.pause_reason is None:
        return
    counter = CAMPAIGN_PAUSES.labels(reason=event.pause_reason.value)
    call_after_commit(db, counter.inc)


def count_recipient_finished(db: Session, event: events.RecipientFinished) -> None:
    counter = RECIPIENTS_FINISHED.labels(status=event.enrollment.status.value)
    call_after_commit(db, counter.inc)
