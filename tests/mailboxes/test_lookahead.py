"""Seeing a break coming: warnings at the lead time, keep-alive, and the expiry that still comes.

Time passes for Sendwell by moving the stored history (when the grant was given, when it was
last refreshed) into the past, as a user would see it after those days; time passes for the
host on the sandbox clock.
"""

from __future__ import annotations

import html
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.kit.clock import utcnow
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import (
    CampaignStatus,
    ExpiryWarning,
    Mailbox,
    MailboxEvent,
    MailboxEventKind,
    MailboxStatus,
    WebhookEndpoint,
    WebhookEvent,
)
from sendwell.providers.registry import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.conftest import Database, create_first_account, csrf_from, make_settings
from tests.mailboxes.conftest import finish_at_provider, link
from tests.mailboxes.test_reauth import Inbox, campaign_on, smtp  # noqa: F401 - fixture
from tests.sandbox_support import TEST_BASE_URLS, Sandbox

DAY = 24 * 3600


def app_client(
    database: Database, engine: Engine, sandbox: Sandbox, port: int, **settings: object
) -> TestClient:
    values = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        smtp_url=f"smtp://127.0.0.1:{port}?from=sendwell@example.com",
        **settings,
    )
    return TestClient(create_app(values, engine=engine))


@pytest.fixture
def testing_google_app(sandbox: Sandbox) -> None:
    """Sendwell's Google client registered in "Testing" publishing status."""
    sandbox.admin(
        "clients",
        {
            "provider": "google",
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
            "redirect_uris": [f"{base}/mailboxes/callback/google" for base in TEST_BASE_URLS],
            "publishing_status": "testing",
        },
    )


def check(client: TestClient) -> None:
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]


def days_pass(db: Session, email: str, days: float) -> None:
    """Sendwell's history of the mailbox moves back, as if that many days had gone by."""
    mailbox = db.scalars(select(Mailbox).where(Mailbox.email == email)).one()
    for event in db.scalars(select(MailboxEvent).where(MailboxEvent.mailbox_id == mailbox.id)):
        event.at -= timedelta(days=days)
    db.commit()


def subscribe_all(db: Session, client: TestClient) -> None:
    user = accounts.get_user_by_email(db, "ada@example.com")
    assert user is not None
    db.add(
        WebhookEndpoint(
            workspace_id=user.workspace_id,
            url="https://hooks.example.com/sendwell",
            events="mailbox.expiring",
            secret=client.app.state.services.box.seal("whsec_" + "k" * 32),  # type: ignore[attr-defined]
            created_by_id=user.id,
        )
    )
    db.commit()


def expiring_events(db: Session) -> list[WebhookEvent]:
    db.expire_all()
    return list(db.scalars(select(WebhookEvent).where(WebhookEvent.type == "mailbox.expiring")))


def test_testing_mode_warns_at_two_days_then_pause_reauthenticate_resume(
    database: Database,
    engine: Engine,
    sandbox: Sandbox,
    smtp: tuple[Inbox, int],  # noqa: F811 - the fixture
    db: Session,
    testing_google_app: None,
) -> None:
    inbox, port = smtp
    with app_client(database, engine, sandbox, port, google_publishing_status="testing") as client:
        create_first_account(client)
        link(client, "ada@gmail.test")
        subscribe_all(db, client)
        campaign = campaign_on(db, "ada@gmail.test", "Q4 outreach")

        days_pass(db, "ada@gmail.test", 4.9)
        check(client)
        assert "will disconnect" not in client.get("/messaging/campaigns").text
        assert inbox.messages == []

        days_pass(db, "ada@gmail.test", 0.2)  # 5.1 days since consent: within 2 days of 7
        check(client)
        check(client)
        page = html.unescape(client.get("/messaging/campaigns").text)
        assert "ada@gmail.test will disconnect on" in page
        assert "publishing the Google app" in page
        (mail,) = inbox.messages
        assert mail["Subject"].startswith("Heads-up: ada@gmail.test will disconnect")
        assert "Reauthenticate" in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        (event,) = expiring_events(db)
        assert '"reason": "google_testing_app"' in event.payload
        api = client.get("/api/v1/mailboxes", headers=api_headers(db)).json()
        assert api[0]["expected_expiry"]["reason"] == "google_testing_app"

        # Nobody acted: on the host's clock the 7 days pass and the grant ends.
        sandbox.admin("clock", {"advance_seconds": 7 * DAY + 3600})
        check(client)
        db.expire_all()
        mailbox = db.scalars(select(Mailbox)).one()
        assert mailbox.status is MailboxStatus.REAUTH_REQUIRED
        assert db.get(type(campaign), campaign.id).status is CampaignStatus.PAUSED  # type: ignore[union-attr]

        reauth = client.post(
            f"/mailboxes/{mailbox.id}/reauthenticate",
            data={"csrftoken": csrf_from(client.get("/messaging/settings").text)},
            follow_redirects=False,
        )
        finish_at_provider(client, reauth, "ada@gmail.test")
        settings = html.unescape(client.get("/messaging/settings").text)
        assert "will disconnect" not in settings
        assert "Expected expiry:" in settings
        done = client.post(
            f"/mailboxes/{mailbox.id}/resume-all",
            data={"csrftoken": csrf_from(settings), "confirmed": "1"},
        )
        assert "Resumed 1 campaign" in html.unescape(done.text)
        db.expire_all()
        assert db.get(type(campaign), campaign.id).status is CampaignStatus.ACTIVE  # type: ignore[union-attr]
        check(client)
        db.expire_all()
        assert db.scalars(select(Mailbox)).one().status is MailboxStatus.CONNECTED


def api_headers(db: Session) -> dict[str, str]:
    user = accounts.get_user_by_email(db, "ada@example.com")
    assert user is not None
    _row, token = accounts.create_api_token(db, user, "expiry")
    db.commit()
    return {"Authorization": f"Bearer {token}"}


def refreshes(db: Session) -> int:
    db.expire_all()
    return len(
        list(
            db.scalars(select(MailboxEvent).where(MailboxEvent.kind == MailboxEventKind.REFRESHED))
        )
    )


def test_keep_alive_refreshes_an_idle_microsoft_token_before_ninety_days(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "grace@contoso.outlook.test")
    check(client)
    assert refreshes(db) == 0  # a fresh token and a recent grant: the host is not woken

    days_pass(db, "grace@contoso.outlook.test", 65)
    check(client)
    assert refreshes(db) == 1
    (mailbox,) = client.get("/api/v1/mailboxes", headers=api_headers(db)).json()
    expected = mailbox["expected_expiry"]
    assert expected["reason"] == "microsoft_unused"
    assert expected["at"] > (utcnow() + timedelta(days=89)).isoformat()
    assert 'class="banner banner-ahead"' not in client.get("/messaging/campaigns").text

    # On the host's clock, 89 more days: the token the keep-alive obtained is still alive.
    sandbox.admin("clock", {"advance_seconds": 89 * DAY})
    check(client)
    db.expire_all()
    assert db.scalars(select(Mailbox)).one().status is MailboxStatus.CONNECTED


def test_an_expiring_client_secret_warns_owner_and_admins_once_for_the_workspace(
    database: Database,
    engine: Engine,
    sandbox: Sandbox,
    smtp: tuple[Inbox, int],  # noqa: F811 - the fixture
    db: Session,
) -> None:
    inbox, port = smtp
    ends = date.today() + timedelta(days=5)
    with app_client(
        database, engine, sandbox, port, microsoft_client_secret_expires=ends
    ) as client:
        create_first_account(client)
        link(client, "grace@contoso.outlook.test")
        link(client, "ada@fabrikam.outlook.test")
        subscribe_all(db, client)
        check(client)
        check(client)
        subjects = sorted(m["Subject"].replace("\r\n ", " ") for m in inbox.messages)
        assert subjects == [
            f"Action needed by {ends:%Y-%m-%d}: the Microsoft client secret expires",
            *(
                f"Heads-up: {address} will disconnect from Sendwell on {ends:%Y-%m-%d}"
                for address in ("ada@fabrikam.outlook.test", "grace@contoso.outlook.test")
            ),
        ]
        assert len(expiring_events(db)) == 2
        assert len(list(db.scalars(select(ExpiryWarning)))) == 3
        page = html.unescape(client.get("/messaging/expiry").text)
        assert "adds a new client secret" in page
        assert page.count("UTC</time></td>") == 2
        assert page.count(f"{ends:%Y-%m-%d} 00:00 UTC") == 4  # two rows, two banners


def test_the_admin_view_lists_every_account_soonest_first(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    link(client, "grace@contoso.outlook.test")
    days_pass(db, "ada@gmail.test", 20)
    headers = api_headers(db)
    soonest = client.get("/api/v1/mailboxes/expiry", headers=headers).json()
    assert [row["email"] for row in soonest] == ["grace@contoso.outlook.test", "ada@gmail.test"]
    assert soonest[0]["expected_expiry"]["reason"] == "microsoft_unused"
    by_email = client.get("/api/v1/mailboxes/expiry?sort=email", headers=headers).json()
    assert [row["email"] for row in by_email] == ["ada@gmail.test", "grace@contoso.outlook.test"]
    page = client.get("/messaging/expiry").text
    assert page.index("grace@contoso.outlook.test") < page.index("ada@gmail.test")


def test_only_admins_see_the_workspace_expiry_view(client: TestClient, db: Session) -> None:
    admin = accounts.get_user_by_email(db, "ada@example.com")
    assert admin is not None
    member = accounts.create_user(db, email="bob@example.com", password="a-long-password-1")
    _row, token = accounts.create_api_token(db, member, "t")
    db.commit()
    refused = client.get("/api/v1/mailboxes/expiry", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert "admin" in refused.json()["error"]["message"]
