"""A linked sandbox mailbox, a started campaign, and a dispatcher that sends through it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendwell.app import create_app
from sendwell.campaigns import recipients, service
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.dispatch.engine import Dispatcher, DispatchPolicy
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.mailboxes.connections import Connections
from sendwell.models import Mailbox, User
from tests.conftest import Database, create_first_account, make_settings
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

SENDER = "ada@gmail.test"


@dataclass
class World:
    client: TestClient
    factory: sessionmaker[Session]
    connections: Connections
    sandbox: Sandbox
    settings: Settings

    def mailbox_id(self, email: str = SENDER) -> int:
        with session_scope(self.factory) as db:
            return int(db.scalars(select(Mailbox.id).where(Mailbox.email == email)).one())

    def campaign(
        self,
        steps: list[tuple[str, str, int]],
        emails: list[str],
        *,
        sender: str = SENDER,
        start: bool = True,
        min_gap_seconds: int = 0,
        start_delay_minutes: int = 0,
    ) -> int:
        """A campaign with (subject, body, delay minutes) steps, started unless told not to."""
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
                steps=[service.StepIn(s, b, d) for s, b, d in steps],
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
            self.connections,
            DispatchPolicy(**values),  # type: ignore[arg-type]
            unsubscribe=UnsubscribeLinks("http://testserver", "k" * 40),
        )

    def sent(self, email: str = SENDER) -> list[dict[str, Any]]:
        return self.sandbox.sent(email)


@pytest.fixture
def world(database: Database, engine: Engine, sandbox: Sandbox) -> Iterator[World]:
    settings = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        dns_timeout_seconds=0.3,
        provider_timeout_seconds=5,
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        create_first_account(client)
        link(client, SENDER)
        app: Any = client.app
        yield World(
            client,
            app.state.session_factory,
            app.state.connections,
            sandbox,
            settings,
        )
