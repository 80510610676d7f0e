"""Checking each mailbox's sending domain: now (Email Settings), or from the periodic health
check at most once an hour; a change for the worse is a mailbox event and a webhook."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import commit_then, session_scope
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput
from sendwell.kit.logging import get_logger
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.domain_health import Report, assess, worsened
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.service import get_mailbox, record_event
from sendwell.models import DomainCheck, Mailbox, MailboxEventKind, User

log = get_logger(__name__)
RECHECK = timedelta(hours=1)
SELECTOR = re.compile(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*")
MAX_SELECTORS = 10


def set_selectors(db: Session, user: User, mailbox_id: int, text: str) -> list[str]:
    """Save the DKIM selectors the user names (comma- or space-separated) for the mailbox."""
    return save_selectors(db, user, mailbox_id, re.split(r"[\s,]+", text.strip()))


def save_selectors(db: Session, user: User, mailbox_id: int, named: list[str]) -> list[str]:
    """Save these DKIM selectors for the mailbox (each one name; empty entries ignored)."""
    mailbox = get_mailbox(db, user, mailbox_id)
    selectors = list(dict.fromkeys(s.strip() for s in named if s.strip()))
    bad = [s for s in selectors if not SELECTOR.fullmatch(s)]
    if bad:
        raise InvalidInput(
            f"“{bad[0][:80]}” is not a DKIM selector: letters, digits, - and _ only, such as "
            "s1 or mail2024.",
            code="invalid_selector",
        )
    if len(selectors) > MAX_SELECTORS:
        raise InvalidInput(
            f"Name at most {MAX_SELECTORS} DKIM selectors.", code="too_many_selectors"
        )
    found = repo.get_domain_check(db, mailbox.id)
    if found is None:
        found = DomainCheck(mailbox_id=mailbox.id, domain="", results=[])
        db.add(found)
    found.selectors = ",".join(selectors)
    db.flush()
    return selectors


def selectors_of(found: DomainCheck | None) -> list[str]:
    return [s for s in (found.selectors if found else "").split(",") if s]


def latest(db: Session, user: User, mailbox_id: int) -> tuple[Mailbox, DomainCheck | None]:
    """The mailbox (someone else's is not found) and its domain's last look, if any."""
    mailbox = get_mailbox(db, user, mailbox_id)
    return mailbox, repo.get_domain_check(db, mailbox.id)


def recheck_if_due(
    factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int
) -> None:
    """The health check's part: look again when the last look is an hour old."""
    with session_scope(factory) as db:
        due = repo.domain_check_due(db, mailbox_id, utcnow() - RECHECK)
    if due:
        check_domain(factory, services, mailbox_id)


def check_now(
    db: Session,
    factory: sessionmaker[Session],
    services: ProviderServices,
    user: User,
    mailbox_id: int,
    *,
    selectors: list[str] | None = None,
) -> None:
    """Check now: save the DKIM selectors named (if any) and look the domain up. The lookup
    reads the selectors in sessions of its own, so what the request saved is committed
    first; what `db` reads afterwards is the result."""
    get_mailbox(db, user, mailbox_id)  # someone else's account is not found
    if selectors is not None:
        save_selectors(db, user, mailbox_id, selectors)
    commit_then(db, lambda: check_domain(factory, services, mailbox_id))
    db.expire_all()


def check_domain(
    factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int
) -> None:
    """Look the mailbox's domain up now (DNS outside any transaction) and keep the result."""
    with session_scope(factory) as db:
        mailbox = repo.get_mailbox(db, mailbox_id)
        if mailbox is None:
            return
        current = repo.get_domain_check(db, mailbox_id)
        selectors = selectors_of(current)
        email, provider = mailbox.email, mailbox.provider
    report = assess(email, provider, selectors, services.domain_dns, sandbox=services.sandbox)
    with session_scope(factory) as db:
        _keep(db, mailbox_id, report)


def _keep(db: Session, mailbox_id: int, report: Report) -> None:
    mailbox = repo.get_mailbox(db, mailbox_id)
    if mailbox is None:
        return
    found = repo.get_domain_check(db, mailbox_id)
    if found is None:
        found = DomainCheck(mailbox_id=mailbox_id, domain=report.domain, results=[])
        db.add(found)
    before = found.results if found.domain == report.domain and found.checked_at else []
    results = report.results()
    changes = worsened(before, results)
    found.domain, found.handled_by, found.results = report.domain, report.handled_by, results
    found.checked_at = utcnow()
    log.info(
        "job",
        name="domain_health_check",
        mailbox_id=mailbox_id,
        statuses={c.name: c.status for c in report.checks},
        worsened=len(changes),
    )
    if not changes:
        return
    record_event(
        db,
        mailbox,
        MailboxEventKind.DOMAIN_HEALTH_WORSENED,
        reason=f"{report.domain}: {'; '.join(changes)}. See Domain health for what to add.",
    )
    changed = {line.split(":", 1)[0] for line in changes}
    previous = {c["name"]: c["status"] for c in before}
    events.publish(
        db,
        events.MailboxDomainHealthWorsened(
            mailbox=mailbox,
            domain=report.domain,
            checks=[
                {**c, "previous_status": previous[c["name"]]}
                for c in results
                if c["name"] in changed
            ],
        ),
    )
