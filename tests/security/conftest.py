"""Two users of one workspace, an admin of another, and what the first one owns.

Alice (a member) owns a linked mailbox, a campaign with a recipient, an API token, a link
waiting for her confirmation and a link still at the provider; she approved Dan (a member) to
send from her mailbox. Ada, the workspace admin, owns a webhook endpoint (only admins have
them) and an invitation still open, and manages Alice's account. Bob is a member of the same
workspace; Carol administers a second workspace, created directly in the database because the
product itself makes one workspace per installation. Each has a signed-in browser and an API
token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendwell.accounts import passwords
from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.campaigns import recipients, service
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.delegations import service as delegations
from sendwell.kit.clock import utcnow
from sendwell.models import (
    Delegation,
    Enrollment,
    Mailbox,
    Reply,
    ReplyKind,
    Role,
    User,
    Workspace,
)
from sendwell.snippets import service as snippets
from sendwell.teams import service as teams
from sendwell.webhooks import service as webhooks
from tests.conftest import (
    LOOPBACK,
    STRONG_PASSWORD,
    Database,
    create_first_account,
    make_settings,
    post_form,
)
from tests.mailboxes.conftest import finish_at_provider, link, start_link
from tests.sandbox_support import Sandbox

# Text only Alice's objects contain: none of it may reach anyone else.
CAMPAIGN_NAME = "Alice private campaign qz7"
SUBJECT = "Alice private subject qz7"
RECIPIENT = "alice-target-qz7@example.com"
MAILBOX = "alice.qz7@gmail.test"
TOKEN_NAME = "alice-token-qz7"
WEBHOOK = "Ada private webhook qz7"
MARKERS = (CAMPAIGN_NAME, SUBJECT, RECIPIENT, MAILBOX, TOKEN_NAME, WEBHOOK)


@dataclass
class Identity:
    """Someone making requests: a browser with its cookies and an API token ("" for none)."""

    name: str
    client: TestClient
    token: str

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass(frozen=True)
class Owned:
    """The ids of Alice's objects, by the path parameter names routes use."""

    campaign_id: int
    enrollment_id: int
    mailbox_id: int
    token_id: int
    attempt_id: int
    endpoint_id: int
    pending_state: str
    user_id: int = 0  # Alice's account, which Ada manages
    invitation_id: int = 0  # Ada's open invitation
    delegation_id: int = 0  # Alice's approval for Dan to send from her mailbox
    snippet_id: int = 0  # Alice's snippet: her workspace reads it, only she (or Ada) changes it
    reply_id: int = 0  # a reply to Alice's campaign

    def path_values(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "enrollment_id": self.enrollment_id,
            "mailbox_id": self.mailbox_id,
            "token_id": self.token_id,
            "attempt_id": self.attempt_id,
            "endpoint_id": self.endpoint_id,
            "user_id": self.user_id,
            "invitation_id": self.invitation_id,
            "delegation_id": self.delegation_id,
            "snippet_id": self.snippet_id,
            "reply_id": self.reply_id,
        }


@dataclass
class Tenants:
    app: FastAPI
    factory: sessionmaker[Session]
    ada: Identity
    alice: Identity
    bob: Identity
    carol: Identity
    dan: Identity
    anonymous: Identity
    owned: Owned

    def snapshot(self) -> dict[str, Any]:
        """What anyone else's requests must leave exactly as it was."""
        with session_scope(self.factory) as db:
            campaign = service.get_campaign(db, self._user(db, "alice"), self.owned.campaign_id)
            mailbox = db.get(Mailbox, self.owned.mailbox_id)
            assert mailbox is not None
            alice = self._user(db, "alice")
            delegation = db.get(Delegation, self.owned.delegation_id)
            assert delegation is not None
            return {
                "alice": (alice.name, alice.role, alice.deactivated_at),
                "delegation": (delegation.status, delegation.mailbox_id, delegation.delegate_id),
                "invitations": [
                    i.cancelled_at for i in teams.open_invitations(db, self._user(db, "ada"))
                ],
                "campaign": (
                    campaign.name,
                    campaign.status,
                    campaign.mailbox_id,
                    [(s.subject, s.body) for s in campaign.steps],
                ),
                "replies": [
                    (r.interest, r.marked_by_id)
                    for r in db.scalars(select(Reply).where(Reply.id == self.owned.reply_id))
                ],
                "recipients": sorted(
                    db.scalars(
                        select(Enrollment.email).where(
                            Enrollment.campaign_id == self.owned.campaign_id
                        )
                    )
                ),
                "mailbox": (
                    mailbox.status,
                    mailbox.daily_cap,
                    mailbox.min_gap_seconds,
                    mailbox.display_name,
                    mailbox.signature,
                ),
                "tokens": [t.name for t in accounts.list_api_tokens(db, self._user(db, "alice"))],
                "campaigns": len(service.visible_campaigns(db, self._user(db, "ada"))),
                "webhooks": [
                    (e.id, e.url, e.events, e.description, e.enabled)
                    for e in webhooks.list_endpoints(db, self._user(db, "ada"))
                ],
            }

    @staticmethod
    def _user(db: Session, name: str) -> User:
        return db.scalars(select(User).where(User.email == f"{name}@example.com")).one()


def _sign_in(app: FastAPI, email: str) -> TestClient:
    client = TestClient(app)
    response = post_form(
        client,
        "/sign-in",
        "/sign-in",
        {"email": email, "password": STRONG_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def _add_users(factory: sessionmaker[Session]) -> dict[str, str]:
    """Alice, Bob and Dan (members), Carol (admin of workspace 2); returns their API tokens."""
    tokens: dict[str, str] = {}
    with session_scope(factory) as db:
        for name in ("alice", "bob", "dan"):
            accounts.create_user(
                db, email=f"{name}@example.com", password=STRONG_PASSWORD, name=name.title()
            )
        db.add(Workspace(id=2, name="Another company"))
        db.flush()
        db.add(
            User(
                workspace_id=2,
                email="carol@example.com",
                name="Carol",
                password_hash=passwords.hash_password(STRONG_PASSWORD),
                role=Role.ADMIN,
            )
        )
        db.flush()
        for name in ("ada", "alice", "bob", "carol", "dan"):
            user = Tenants._user(db, name)
            label = TOKEN_NAME if name == "alice" else f"{name}-token"
            tokens[name] = accounts.create_api_token(db, user, label)[1]
    return tokens


def _alices_objects(alice: TestClient, app: Any) -> Owned:
    assert link(alice, MAILBOX).status_code == 303
    waiting = finish_at_provider(
        alice, start_link(alice, "alice.other@gmail.test"), "alice.elsewhere@gmail.test"
    )
    confirm = re.search(r'action="/mailboxes/link/(\d+)/confirm"', waiting.text)
    assert confirm, waiting.text
    at_provider = start_link(alice, MAILBOX).headers["location"]
    pending_state = dict(parse_qsl(urlsplit(at_provider).query))["state"]
    with session_scope(app.state.session_factory) as db:
        endpoint = webhooks.create_endpoint(
            db,
            app.state.services.box,
            Tenants._user(db, "ada"),
            url="http://127.0.0.1:9/ada-hook",  # an address literal: no DNS look-up
            events=["campaign.started"],
            description=WEBHOOK,
            outbound=LOOPBACK,
        )
        user = Tenants._user(db, "alice")
        mailbox_id = db.scalars(select(Mailbox.id).where(Mailbox.email == MAILBOX)).one()
        campaign = service.create_campaign(
            db,
            user,
            name=CAMPAIGN_NAME,
            mailbox_id=mailbox_id,
            steps=[service.StepIn(SUBJECT, "Hello {{ first_name }}")],
        )
        recipients.add_recipients(
            db, user, campaign.id, [recipients.RecipientIn(RECIPIENT, first_name="Zed")]
        )
        enrollment_id = db.scalars(
            select(Enrollment.id).where(Enrollment.campaign_id == campaign.id)
        ).one()
        token_id = accounts.list_api_tokens(db, user)[0].id
        ada = Tenants._user(db, "ada")
        invited = teams.invite(
            db, ada, email="eve@example.com", role=Role.MEMBER, base_url="http://testserver"
        )
        # A reply as the inbound reader records it (the dispatch tests record real ones).
        reply = Reply(
            campaign_id=campaign.id,
            enrollment_id=enrollment_id,
            mailbox_id=mailbox_id,
            step_position=1,
            received_at=utcnow(),
            from_address=RECIPIENT,
            subject=f"Re: {SUBJECT}",
            provider_message_id="alices-reply",
            thread_id="alices-thread",
            kind=ReplyKind.REPLY,
        )
        db.add(reply)
        db.flush()
        asked = delegations.request(db, Tenants._user(db, "dan"), owner_id=user.id)
        delegations.approve(db, user, asked.delegation.id, mailbox_id)
        snippet = snippets.create(db, user, name="Alice's sign-off", body="Talk soon, Alice")
        return Owned(
            campaign_id=campaign.id,
            enrollment_id=enrollment_id,
            mailbox_id=mailbox_id,
            token_id=token_id,
            attempt_id=int(confirm.group(1)),
            endpoint_id=endpoint.id,
            pending_state=pending_state,
            user_id=user.id,
            invitation_id=invited.invitation.id,
            delegation_id=asked.delegation.id,
            snippet_id=snippet.id,
            reply_id=reply.id,
        )


@pytest.fixture
def security_settings(database: Database, sandbox: Sandbox) -> Settings:
    return make_settings(
        database.url, sandbox=True, sandbox_url=sandbox.url, dns_timeout_seconds=0.3
    )


@pytest.fixture
def tenants(security_settings: Settings, engine: Engine) -> Iterator[Tenants]:
    with TestClient(create_app(security_settings, engine=engine)) as admin:
        create_first_account(admin)
        app: Any = admin.app
        factory: sessionmaker[Session] = app.state.session_factory
        tokens = _add_users(factory)
        alice = _sign_in(app, "alice@example.com")
        owned = _alices_objects(alice, app)
        yield Tenants(
            app=app,
            factory=factory,
            ada=Identity("ada (workspace admin)", admin, tokens["ada"]),
            alice=Identity("alice", alice, tokens["alice"]),
            bob=Identity("bob (same workspace)", _sign_in(app, "bob@example.com"), tokens["bob"]),
            carol=Identity(
                "carol (admin of another workspace)",
                _sign_in(app, "carol@example.com"),
                tokens["carol"],
            ),
            dan=Identity(
                "dan (approved to send from Alice's mailbox)",
                _sign_in(app, "dan@example.com"),
                tokens["dan"],
            ),
            anonymous=Identity("anonymous", TestClient(app), ""),
            owned=owned,
        )
