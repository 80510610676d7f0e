"""Periodic work: check every connected mailbox so a dead grant is found before a send fails
(declared for `sendwell serve` in `register_jobs`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.kit.jobs import Every, JobKind, JobRegistry
from sendwell.kit.logging import get_logger
from sendwell.mailboxes import domain_checks
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.lookahead import look_ahead
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import with_credential
from sendwell.models import MailboxStatus
from sendwell.providers.errors import ProviderError

log = get_logger(__name__)


@dataclass(frozen=True)
class HealthReport:
    checked: int
    healthy: int
    failed: int


def check_connections(factory: sessionmaker[Session], services: ProviderServices) -> HealthReport:
    """Refresh or probe every connected mailbox; failures are recorded by the token layer."""
    with session_scope(factory) as db:
        mailbox_ids = repo.mailbox_ids_with_status(db, MailboxStatus.CONNECTED)
    return _check(factory, services, mailbox_ids)


def check_due_connections(
    factory: sessionmaker[Session], services: ProviderServices, interval: timedelta
) -> HealthReport:
    """Check the connected mailboxes no process has checked in the last half interval.

    Each mailbox is claimed with a compare-and-set on `last_checked_at`, so however many
    `sendwell serve` processes run this job, a mailbox is checked about once per interval.
    """
    now = utcnow()
    with session_scope(factory) as db:
        candidates = repo.mailbox_ids_with_status(db, MailboxStatus.CONNECTED)
    claimed = []
    for mailbox_id in candidates:
        with session_scope(factory) as db:
            if repo.claim_health_check(db, mailbox_id, now, now - interval / 2):
                claimed.append(mailbox_id)
    return _check(factory, services, claimed)


def _check(
    factory: sessionmaker[Session], services: ProviderServices, mailbox_ids: list[int]
) -> HealthReport:
    healthy = failed = 0
    for mailbox_id in mailbox_ids:
        started = time.perf_counter()
        try:
            with session_scope(factory) as db:
                mailbox = repo.get_mailbox(db, mailbox_id)
                provider_name = mailbox.provider if mailbox else ""
            provider = services.mail_host(provider_name)
            with_credential(factory, services, mailbox_id, provider.probe)
            look_ahead(factory, services, mailbox_id)
        except (ProviderError, SendwellError) as error:
            # One mailbox's problem (a dead grant, a host no longer configured) never stops
            # the others from being checked.
            failed += 1
            outcome = type(error).__name__
        else:
            healthy += 1
            outcome = "healthy"
        _check_domain(factory, services, mailbox_id)
        mark_checked(factory, mailbox_id)
        log.info(
            "job",
            name="mailbox_health_check",
            mailbox_id=mailbox_id,
            outcome=outcome,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
    return HealthReport(len(mailbox_ids), healthy, failed)


def _check_domain(
    factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int
) -> None:
    """The sending domain's records, looked at again when due, whatever the probe answered
    (DNS is not the mail host); a failure here never stops the other mailboxes' checks."""
    try:
        domain_checks.recheck_if_due(factory, services, mailbox_id)
    except Exception:
        log.exception("domain_health_check_failed", mailbox_id=mailbox_id)


def mark_checked(factory: sessionmaker[Session], mailbox_id: int) -> None:
    with session_scope(factory) as db:
        mailbox = repo.get_mailbox(db, mailbox_id)
        if mailbox is not None:
            mailbox.last_checked_at = utcnow()


def register_jobs(registry: JobRegistry[ProviderServices]) -> None:
    """The connection health check (with its look-ahead warnings and domain re-checks)."""
    registry.add("mailbox_health_check", kind=JobKind.UPKEEP, build=health_check_job)


def health_check_job(
    settings: Settings, factory: sessionmaker[Session], services: ProviderServices
) -> Every:
    """Check the mailboxes due for it every `SENDWELL_HEALTH_CHECK_MINUTES`."""
    interval = timedelta(minutes=settings.health_check_minutes)
    return Every(
        interval.total_seconds(),
        partial(check_due_connections, factory, services, interval),
        "mailbox_health_check",
    )
