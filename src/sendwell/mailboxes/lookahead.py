"""Seeing a break coming: expected expiries, keep-alive refreshes, and warnings ahead of time.

The health check calls `look_ahead` for each mailbox it checks. A warning is given once per
cause and expected date (a row in `expiry_warnings`, unique), in the same unit of work as its
event (`MailboxExpiring`, or `WorkspaceExpiring` for what every account depends on), which
the webhook outbox and the notification emails hear.
"""

from __future__ import annotations

import imaplib
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Forbidden
from sendwell.kit.logging import get_logger
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.expiry import (
    Expiry,
    ExpiryRules,
    MailboxFacts,
    expected_expiry,
    keep_alive_due,
)
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import fresh_credential
from sendwell.models import ExpiryWarning, Mailbox, MailboxEventKind, MailboxStatus, User
from sendwell.providers.mail_server import Endpoint, Security

log = get_logger(__name__)
GRANTED = [MailboxEventKind.CONNECTED, MailboxEventKind.REAUTHENTICATED]
USED = [*GRANTED, MailboxEventKind.REFRESHED]
WORKSPACE_SCOPE = "workspace"
CERTIFICATE_CHECK_INTERVAL = timedelta(days=1)


@dataclass(frozen=True)
class ExpiryRow:
    """One line of the admin view, and of the Messaging banner when its warning is due."""

    mailbox: Mailbox
    expiry: Expiry | None


def facts_for(db: Session, mailboxes: list[Mailbox]) -> dict[int, MailboxFacts]:
    """What the stored history says about each mailbox's grant."""
    ids = [m.id for m in mailboxes]
    times = repo.latest_event_times(db, ids, USED)
    servers = repo.mail_servers_of(db, ids)
    facts = {}
    for mailbox in mailboxes:
        granted = [times[(mailbox.id, k)] for k in GRANTED if (mailbox.id, k) in times]
        used = [times[(mailbox.id, k)] for k in USED if (mailbox.id, k) in times]
        server = servers.get(mailbox.id)
        facts[mailbox.id] = MailboxFacts(
            provider=mailbox.provider,
            granted_at=max(granted, default=None),
            last_used_at=max(used, default=None),
            certificate_expires_at=server.certificate_expires_at if server else None,
        )
    return facts


def expiries_for(db: Session, rules: ExpiryRules, mailboxes: list[Mailbox]) -> dict[int, Expiry]:
    """The expected expiry of each connected mailbox that has one."""
    connected = [m for m in mailboxes if m.status is MailboxStatus.CONNECTED]
    found = {}
    for mailbox_id, facts in facts_for(db, connected).items():
        expiry = expected_expiry(facts, rules)
        if expiry is not None:
            found[mailbox_id] = expiry
    return found


def workspace_expiries(db: Session, rules: ExpiryRules, user: User, sort: str) -> list[ExpiryRow]:
    """Every account of the workspace with its expected expiry (admins only), sorted."""
    if not user.is_admin:
        raise Forbidden(
            "Only a workspace admin can see every account's expected expiry.", code="admin_only"
        )
    mailboxes = repo.workspace_mailboxes(db, user.workspace_id)
    expiries = expiries_for(db, rules, mailboxes)
    rows = [ExpiryRow(m, expiries.get(m.id)) for m in mailboxes]
    keys = {
        "email": lambda r: (r.mailbox.email,),
        "owner": lambda r: (r.mailbox.owner.email, r.mailbox.email),
        "provider": lambda r: (r.mailbox.provider, r.mailbox.email),
    }
    if sort in keys:
        return sorted(rows, key=keys[sort])
    # Soonest first; accounts with nothing expected after them, broken ones first of all.
    return sorted(rows, key=_soonest)


def _soonest(row: ExpiryRow) -> tuple[int, datetime, str]:
    if row.mailbox.status is not MailboxStatus.CONNECTED:
        return (0, row.mailbox.status_changed_at, row.mailbox.email)
    if row.expiry is None:
        return (2, datetime.max.replace(tzinfo=utcnow().tzinfo), row.mailbox.email)
    return (1, row.expiry.at, row.mailbox.email)


def due_warnings(db: Session, rules: ExpiryRules, user: User) -> list[ExpiryRow]:
    """The user's own accounts whose expected expiry is within its warning time (banner)."""
    mine = [m for m in repo.owned_mailboxes(db, user.id) if m.status is MailboxStatus.CONNECTED]
    expiries = expiries_for(db, rules, mine)
    now = utcnow()
    return [
        ExpiryRow(m, expiries[m.id])
        for m in mine
        if m.id in expiries and expiries[m.id].warning_due(now)
    ]


def look_ahead(factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int) -> None:
    """Refresh an idle token before it lapses, then warn if a break is within its lead time."""
    rules = services.expiry_rules
    _read_certificates(factory, services, mailbox_id)
    facts = _current_facts(factory, mailbox_id)
    if facts is None:
        return
    if keep_alive_due(facts, rules, utcnow()):
        log.info("mailbox_keep_alive", mailbox_id=mailbox_id)
        fresh_credential(factory, services, mailbox_id, force_refresh=True)
        facts = _current_facts(factory, mailbox_id)
        if facts is None:
            return
    expiry = expected_expiry(facts, rules)
    if expiry is None or not expiry.warning_due(utcnow()):
        return
    try:
        _record_warning(factory, mailbox_id, expiry)
    except IntegrityError:
        return  # another process gave this warning at the same moment


def _read_certificates(
    factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int
) -> None:
    """An IMAP/SMTP account's certificate expiry, read at most once a day: it rarely changes."""
    with session_scope(factory) as db:
        server = repo.get_mail_server(db, mailbox_id)
        if server is None or services.certificate_reader is None:
            return
        checked = server.certificate_checked_at
        if checked is not None and utcnow() - checked < CERTIFICATE_CHECK_INTERVAL:
            return
        endpoints = [
            (Endpoint(server.smtp_host, server.smtp_port, Security(server.smtp_security)), "smtp"),
            (Endpoint(server.imap_host, server.imap_port, Security(server.imap_security)), "imap"),
        ]
    found = []
    for endpoint, protocol in endpoints:
        try:
            found.append(services.certificate_reader(endpoint, protocol))  # type: ignore[arg-type]
        except (OSError, imaplib.IMAP4.error, smtplib.SMTPException) as error:
            # The health check's own sign-in reports a broken server; this only looks ahead.
            log.info("certificate_unread", mailbox_id=mailbox_id, reason=type(error).__name__)
    with session_scope(factory) as db:
        server = repo.get_mail_server(db, mailbox_id)
        if server is not None:
            server.certificate_expires_at = min((f for f in found if f), default=None)
            server.certificate_checked_at = utcnow()


def _current_facts(factory: sessionmaker[Session], mailbox_id: int) -> MailboxFacts | None:
    with session_scope(factory) as db:
        mailbox = repo.get_mailbox(db, mailbox_id)
        if mailbox is None or mailbox.status is not MailboxStatus.CONNECTED:
            return None
        return facts_for(db, [mailbox])[mailbox_id]


def _record_warning(factory: sessionmaker[Session], mailbox_id: int, expiry: Expiry) -> None:
    with session_scope(factory) as db:
        mailbox = repo.get_mailbox(db, mailbox_id)
        if mailbox is None:
            return
        scope = f"mailbox:{mailbox.id}"
        if not repo.warning_given(db, mailbox.workspace_id, scope, expiry.reason, expiry.at):
            _add_warning(db, mailbox, scope, expiry)
            events.publish(
                db,
                events.MailboxExpiring(
                    mailbox=mailbox,
                    expires_at=expiry.at,
                    reason=expiry.reason.value,
                    why=expiry.why,
                    action=expiry.action,
                ),
            )
        if expiry.workspace_wide and not repo.warning_given(
            db, mailbox.workspace_id, WORKSPACE_SCOPE, expiry.reason, expiry.at
        ):
            _add_warning(db, mailbox, WORKSPACE_SCOPE, expiry)
            events.publish(
                db,
                events.WorkspaceExpiring(
                    workspace_id=mailbox.workspace_id,
                    expires_at=expiry.at,
                    reason=expiry.reason.value,
                    why=expiry.why,
                    action=expiry.action,
                ),
            )
        db.flush()


def _add_warning(db: Session, mailbox: Mailbox, scope: str, expiry: Expiry) -> None:
    log.info("mailbox_expiry_warning", mailbox_id=mailbox.id, reason=expiry.reason.value)
    db.add(
        ExpiryWarning(
            workspace_id=mailbox.workspace_id,
            scope=scope,
            mailbox_id=mailbox.id if scope != WORKSPACE_SCOPE else None,
            reason=expiry.reason.value,
            expires_at=expiry.at,
        )
    )
