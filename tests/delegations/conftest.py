"""Ada (the admin, a recruiter) and Grace (her teammate, with a Gmail account of her own), each
signed in in their own browser, on an app wired to the sandbox; a dispatcher that sends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.dispatch.engine import Dispatcher, DispatchPolicy
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.models import Campaign, Delegation, Mailbox, Role, User
from sendwell.teams import service as teams
from tests.conftest import Database, create_first_account, csrf_from, make_settings, post_form
from tests.sandbox_support import Sandbox, consent_flow
from tests.teams.conftest import accept, smtp, text  # noqa: F401 (smtp: a fixture here too)

TEAMMATE_MAILBOX = "grace@gmail.test"
ONE_STEP = [{"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}."}]


@dataclass
class Team:
    ada: TestClient  # the recruiter
    grace: TestClient  # the teammate who owns the mailbox
    factory: sessionmaker[Session]
    sandbox: Sandbox
    settings: Settings
    ada_api: dict[str, str]

    def ask(self) -> int:
        """Link an email account → A teammate's email account → Grace → Ask for approval."""
        grace_id = self.user_id("grace@example.com")
        asked = post_form(
            self.ada,
            "/messaging/settings",
            "/delegations",
            {"teammate_id": str(grace_id), "note": "For the platform engineer roles"},
        )
        assert "Grace Hopper is asked to approve sending from their account." in text(asked)
        with session_scope(self.factory) as db:
            return db.scalars(select(Delegation.id)).one()

    def link_and_approve(self, delegation_id: int) -> None:
        """Grace, in her own browser, signs in to her Gmail from the request and approves."""
        page = f"/delegations/{delegation_id}"
        response = post_form(
            self.grace, page, f"{page}/link", {"email": TEAMMATE_MAILBOX}, follow_redirects=False
        )
        params = consent_flow(response.headers["location"], TEAMMATE_MAILBOX)
        back = self.grace.get("/mailboxes/callback/google", params=params)
        assert f"{TEAMMATE_MAILBOX} is connected. Review the request and approve it." in text(back)
        self.approve(delegation_id)

    def approve(self, delegation_id: int, label: str = "Approve") -> httpx.Response:
        page = f"/delegations/{delegation_id}"
        shown = self.grace.get(page)
        assert f">{label}</button>" in shown.text
        approved: httpx.Response = self.grace.post(
            f"{page}/approve",
            data={"csrftoken": csrf_from(shown.text), "mailbox_id": str(self.mailbox_id())},
        )
        assert "Approved: Ada Lovelace may send campaigns from grace@gmail.test." in text(approved)
        return approved

    def withdraw(self, delegation_id: int) -> httpx.Response:
        page = f"/delegations/{delegation_id}"
        response: httpx.Response = post_form(self.grace, page, f"{page}/withdraw", {})
        return response

    def user_id(self, email: str) -> int:
        with session_scope(self.factory) as db:
            return db.scalars(select(User.id).where(User.email == email)).one()

    def mailbox_id(self) -> int:
        with session_scope(self.factory) as db:
            return db.scalars(select(Mailbox.id).where(Mailbox.email == TEAMMATE_MAILBOX)).one()

    def api(self, method: str, path: str, **body: Any) -> httpx.Response:
        response: httpx.Response = self.ada.request(
            method, f"/api/v1{path}", headers=self.ada_api, json=body or None
        )
        return response

    def campaign(self, recipients: list[str], steps: list[dict[str, Any]] = ONE_STEP) -> int:
        """Ada's campaign from Grace's account, started with no start delay; Grace lets her
        account send without a gap, so a run sends everything due."""
        mailbox_id = self.mailbox_id()
        saved = post_form(
            self.grace,
            f"/mailboxes/{mailbox_id}",
            f"/mailboxes/{mailbox_id}/settings",
            {"daily_cap": "1000", "min_gap_seconds": "0", "low_gap_confirmed": "1"},
        )
        assert "Email settings saved." in text(saved)
        created = self.api(
            "POST",
            "/campaigns",
            name="Platform engineers",
            mailbox_id=self.mailbox_id(),
            steps=steps,
            start_delay_minutes=0,
        )
        assert created.status_code == 201, created.text
        campaign_id = int(created.json()["id"])
        added = self.api(
            "POST",
            f"/campaigns/{campaign_id}/recipients",
            recipients=[{"email": e, "first_name": e.split("@")[0]} for e in recipients],
        )
        assert added.status_code == 200, added.text
        started = self.api("POST", f"/campaigns/{campaign_id}/start")
        assert started.status_code == 200, started.text
        return campaign_id

    def status(self, campaign_id: int) -> tuple[str, str | None]:
        with session_scope(self.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            assert campaign is not None
            reason = campaign.pause_reason.value if campaign.pause_reason else None
            return campaign.status.value, reason

    def dispatcher(self) -> Dispatcher:
        app: Any = self.ada.app
        return Dispatcher(
            self.factory,
            app.state.services,
            DispatchPolicy(
                lease=timedelta(seconds=60),
                inbound_interval=timedelta(seconds=0),
                settle_grace=timedelta(seconds=0),
            ),
            unsubscribe=UnsubscribeLinks(self.settings.base_url, self.settings.secret_key),
        )

    def sent(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every message in Grace's Sent folder at the sandbox."""
        return [
            (parseaddr(m["to"][0])[1].lower(), m["subject"])
            for m in self.sandbox.sent(TEAMMATE_MAILBOX)
        ]


def api_token(client: TestClient) -> dict[str, str]:
    made = post_form(client, "/account", "/account/tokens", {"name": "script"})
    found = re.search(r'value="(sw_[^"]+)"', made.text)
    assert found, made.text
    return {"Authorization": f"Bearer {found.group(1)}"}


def make_team(settings: Settings, engine: Engine, sandbox: Sandbox) -> Iterator[Team]:
    with TestClient(create_app(settings, engine=engine)) as ada:
        create_first_account(ada)
        app: Any = ada.app
        with session_scope(app.state.session_factory) as db:
            admin = db.scalars(select(User).where(User.email == "ada@example.com")).one()
            invited = teams.invite(
                db, admin, email="grace@example.com", role=Role.MEMBER, base_url=""
            )
        grace = accept(app, invited.link, "Grace Hopper")
        yield Team(ada, grace, app.state.session_factory, sandbox, settings, api_token(ada))


@pytest.fixture
def settings(database: Database, sandbox: Sandbox) -> Settings:
    return make_settings(
        database.url, sandbox=True, sandbox_url=sandbox.url, dns_timeout_seconds=0.3
    )


@pytest.fixture
def team(settings: Settings, engine: Engine, sandbox: Sandbox) -> Iterator[Team]:
    yield from make_team(settings, engine, sandbox)
