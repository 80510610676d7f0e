"""A linked sandbox mailbox, a started campaign, and a dispatcher that sends through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.app import create_app
from sendwell.campaigns import recipients, service
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.dispatch.engine import Dispatcher, DispatchPolicy
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.kit.clock import utcnow
from sendwell.kit.signals import dispatch_work
from sendwell.mailboxes.provider_services import ProviderServices, build_services
from sendwell.models import Enrollment, LedgerStatus, Mailbox, MailboxStatus, SendLedger, User
from sendwell.providers.base import TAG_HEADER
from sendwell.providers.registry import build_registry
from tests.conftest import Database, create_first_account, make_settings
from tests.dispatch.hosts import Host, SandboxHost, ServerHost
from tests.imap_smtp.conftest import fresh_servers
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

SENDER = "ada@gmail.test"


@dataclass
class World:
    client: TestClient
    factory: sessionmaker[Session]
    services: ProviderServices
    sandbox: Sandbox
    settings: Settings

    def mailbox_id(self, email: str = SENDER) -> int:
        with session_scope(self.factory) as db:
            return int(db.scalars(select(Mailbox.id).where(Mailbox.email == email)).one())

    def mailbox_status(self, email: str = SENDER) -> MailboxStatus:
        with session_scope(self.factory) as db:
            return db.scalars(select(Mailbox.status).where(Mailbox.email == email)).one()

    def campaign(
        self,
        steps: list[tuple[str, str, int]] | list[service.StepIn],
        emails: list[str],
        *,
        sender: str = SENDER,
        start: bool = True,
        min_gap_seconds: int = 0,
        start_delay_minutes: int = 0,
    ) -> int:
        """A campaign with (subject, body, delay minutes) steps (or full ones), started unless
        told not to."""
        mailbox_id = self.mailbox_id(sender)
        with session_scope(self.factory) as db:
            user = db.scalars(select(User)).first()
            assert user is not None
            mailbox = db.get(Mailbox, mailbox_id)
            assert mailbox is not None
            mailbox.min_gap_seconds = min_gap_seconds
            campaign = service.create_campaign(
                db,
                user,
                name="Outreach",
                mailbox_id=mailbox_id,
                steps=[
                    step if isinstance(step, service.StepIn) else service.StepIn(*step)
                    for step in steps
                ],
                start_delay_minutes=start_delay_minutes,
            )
            recipients.add_recipients(
                db,
                user,
                campaign.id,
                [recipients.RecipientIn(e, first_name=e.split("@")[0]) for e in emails],
            )
            campaign_id = campaign.id
        if start:
            with session_scope(self.factory) as db:
                user = db.scalars(select(User)).first()
                assert user is not None
                service.start(db, user, campaign_id)
        return campaign_id

    def dispatcher(self, **policy: object) -> Dispatcher:
        values: dict[str, object] = {
            "lease": timedelta(seconds=60),
            "inbound_interval": timedelta(seconds=0),
            "settle_grace": timedelta(seconds=0),
        }
        values.update(policy)
        return Dispatcher(
            self.factory,
            self.services,
            DispatchPolicy(**values),  # type: ignore[arg-type]
            unsubscribe=UnsubscribeLinks("http://testserver", "k" * 40),
        )

    def sent(self, email: str = SENDER) -> list[dict[str, Any]]:
        return self.sandbox.sent(email)

    def services_over(self, http: httpx.Client) -> ProviderServices:
        """The app's hosts, keys and policy, but calling the providers through `http`."""
        return build_services(self.settings, build_registry(self.settings, http))

    def app_dispatcher(
        self, services: ProviderServices | None = None, **policy: object
    ) -> Dispatcher:
        """Like `dispatcher`, with unsubscribe links the app itself accepts (its base URL and
        secret key), optionally over other connections."""
        values: dict[str, object] = {
            "lease": timedelta(seconds=60),
            "inbound_interval": timedelta(seconds=0),
            "settle_grace": timedelta(seconds=0),
        }
        values.update(policy)
        return Dispatcher(
            self.factory,
            services or self.services,
            DispatchPolicy(**values),  # type: ignore[arg-type]
            unsubscribe=UnsubscribeLinks(self.settings.base_url, self.settings.secret_key),
        )

    def enrollment(self, campaign_id: int, email: str) -> Enrollment:
        with session_scope(self.factory) as db:
            found = db.scalars(
                select(Enrollment).where(
                    Enrollment.campaign_id == campaign_id, Enrollment.email == email
                )
            ).one()
            db.expunge(found)
            return found

    def ledger(self, campaign_id: int) -> list[SendLedger]:
        """The campaign's ledger rows, detached, in (recipient, step) order."""
        with session_scope(self.factory) as db:
            rows = list(
                db.scalars(
                    select(SendLedger)
                    .where(SendLedger.campaign_id == campaign_id)
                    .order_by(SendLedger.enrollment_id, SendLedger.step_position)
                )
            )
            db.expunge_all()
            return rows

    def sent_by_step(self, campaign_id: int) -> dict[tuple[str, int], dict[str, Any]]:
        """The campaign's messages in the sandbox by (recipient, step), found by their tag.

        Asserts what a recipient would notice: no step arrived twice, and every message that
        arrived is recorded as sent with the Message-ID it really has.
        """
        rows = {row.tag: row for row in self.ledger(campaign_id)}
        with session_scope(self.factory) as db:
            emails = {
                row.id: row.email
                for row in db.execute(
                    select(Enrollment.id, Enrollment.email).where(
                        Enrollment.campaign_id == campaign_id
                    )
                )
            }
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for message in self.sent():
            row = rows.get(message["headers"].get(TAG_HEADER, ""))
            if row is None:
                continue
            key = (emails[row.enrollment_id], row.step_position)
            assert key not in found, f"{key} arrived twice"
            assert row.status is LedgerStatus.SENT, (key, row.status)
            assert row.message_id_header == message["headers"]["Message-ID"], key
            found[key] = message
        return found

    def due_now(
        self,
        campaign_id: int,
        emails: list[str] | None = None,
        *,
        ago: timedelta = timedelta(seconds=1),
    ) -> None:
        """Skip a wait: pending recipients (or only these) become due `ago` before now. The
        dispatchers are woken as the product's own changes wake them (`dispatch_work`), those
        of `sendwell worker` processes too."""
        with session_scope(self.factory) as db:
            query = update(Enrollment).where(
                Enrollment.campaign_id == campaign_id,
                Enrollment.next_due_at.is_not(None),
            )
            if emails is not None:
                query = query.where(Enrollment.email.in_(emails))
            db.execute(query.values(next_due_at=utcnow() - ago))
            dispatch_work.request(db)

    def postpone(self, campaign_id: int, emails: list[str], by: timedelta) -> None:
        """These pending recipients are not due until `by` from now."""
        self.due_now(campaign_id, emails, ago=-by)


@contextmanager
def linked_world(
    database: Database,
    engine: Engine,
    sandbox: Sandbox,
    link_mailbox: Callable[[TestClient], object],
    **settings_changes: Any,
) -> Iterator[World]:
    """The app with its first account, and a mailbox linked the way its user would."""
    settings = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        dns_timeout_seconds=0.3,
        provider_timeout_seconds=5,
        **settings_changes,
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        create_first_account(client)
        link_mailbox(client)
        app: Any = client.app
        yield World(client, app.state.session_factory, app.state.services, sandbox, settings)


@pytest.fixture
def world(database: Database, engine: Engine, sandbox: Sandbox) -> Iterator[World]:
    with linked_world(database, engine, sandbox, lambda client: link(client, SENDER)) as made:
        yield made


# Imported so that dispatch tests can run against real mail servers too (one set per worker).
from tests.imap_smtp.conftest import mailstore, postfix_submission  # noqa: E402, F401

SANDBOX_SENDERS = {"google": SENDER, "microsoft": "ada@contoso.outlook.test"}


@pytest.fixture(params=["google", "microsoft", "imap"])
def host_world(
    request: pytest.FixtureRequest, database: Database, engine: Engine, sandbox: Sandbox
) -> Iterator[tuple[World, Host]]:
    """A world whose sending mailbox is on each kind of host in turn, linked as its user
    would link it."""
    extra: dict[str, Any] = {}
    host: Host
    if request.param == "imap":
        servers = fresh_servers(
            request.getfixturevalue("mailstore"), request.getfixturevalue("postfix_submission")
        )
        host = ServerHost(servers)
        extra["mail_server_ca_file"] = str(servers.certificates.ca_file)
    else:
        host = SandboxHost(request.param, SANDBOX_SENDERS[request.param], sandbox)
    if request.param == "microsoft":
        # Graph answers before its copy in Sent Items exists.
        sandbox.admin("mailbox-settings", {"mailbox": host.address, "sent_copy_delay": 0.3})
    with linked_world(database, engine, sandbox, host.link, **extra) as made:
        yield made, host
