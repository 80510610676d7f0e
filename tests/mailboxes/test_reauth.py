"""When an account breaks: the banner, the email to its owner, and Resume all after reconnecting."""

from __future__ import annotations

import html
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.app import create_app
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    PauseReason,
)
from tests.conftest import Database, create_first_account, csrf_from, make_settings
from tests.mailboxes.conftest import finish_at_provider, link
from tests.sandbox_support import Sandbox


class Inbox:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def campaign_on(
    db: Session, email: str, name: str, status: CampaignStatus = CampaignStatus.ACTIVE
) -> Campaign:
    mailbox = db.scalars(select(Mailbox).where(Mailbox.email == email)).one()
    campaign = Campaign(
        workspace_id=mailbox.workspace_id,
        owner_id=mailbox.owner_id,
        mailbox_id=mailbox.id,
        name=name,
        status=status,
    )
    db.add(campaign)
    db.flush()
    db.add(
        Enrollment(
            campaign_id=campaign.id,
            email=f"grace+{campaign.id}@example.com",
            status=EnrollmentStatus.NOT_STARTED,
        )
    )
    db.commit()
    return campaign


def test_banner_names_the_account_why_and_what_waits(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    campaign_on(db, "ada@gmail.test", "Q4 outreach")
    campaign_on(db, "ada@gmail.test", "Design leads")
    assert 'class="banner"' not in client.get("/messaging/campaigns").text
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    for page in ("/messaging/campaigns", "/messaging/settings"):
        text = html.unescape(client.get(page).text)
        assert "ada@gmail.test needs reauthentication." in text
        assert "2 campaigns are paused until you reconnect it and resume." in text
        assert "invalid_grant" in text
        assert ">Reauthenticate</button>" in text


def test_a_missing_page_still_shows_the_banner(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    """An error page is drawn after the request's session was rolled back: the banner's
    account must not have to be read from it again."""
    link(client, "ada@gmail.test")
    campaign_on(db, "ada@gmail.test", "Q4 outreach")
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    answer = client.get("/campaigns/999999")
    assert answer.status_code == 404
    text = html.unescape(answer.text)
    assert "ada@gmail.test needs reauthentication." in text
    assert "1 campaign is paused until you reconnect it and resume." in text


def test_owner_is_emailed_when_an_account_breaks(
    database: Database, engine: Engine, sandbox: Sandbox, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        smtp_url=f"smtp://127.0.0.1:{port}?from=sendwell@example.com",
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        create_first_account(client)
        link(client, "ada@gmail.test")
        sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
        check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
        check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    assert len(inbox.messages) == 1
    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Action needed: reconnect ada@gmail.test in Sendwell"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "/messaging/settings" in body


def test_bad_smtp_url_stops_start_up_with_its_name() -> None:
    from pydantic import ValidationError

    from sendwell.config import describe_validation_error

    with pytest.raises(ValidationError) as caught:
        make_settings("sqlite://", smtp_url="smtp://host-without-sender")
    assert describe_validation_error(caught.value).startswith("SENDWELL_SMTP_URL:")


def test_reconnect_lists_paused_campaigns_and_resume_all(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    broken = campaign_on(db, "ada@gmail.test", "Q4 outreach")
    mine = campaign_on(db, "ada@gmail.test", "On hold", CampaignStatus.PAUSED)
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    mailbox = db.scalars(select(Mailbox)).one()
    refused = client.post(
        f"/mailboxes/{mailbox.id}/resume-all",
        data={"csrftoken": csrf_from(client.get("/messaging/settings").text)},
    )
    assert "needs reauthentication" in html.unescape(refused.text)
    reauth = client.post(
        f"/mailboxes/{mailbox.id}/reauthenticate",
        data={"csrftoken": csrf_from(client.get("/messaging/settings").text)},
        follow_redirects=False,
    )
    finish_at_provider(client, reauth, "ada@gmail.test")
    settings = html.unescape(client.get("/messaging/settings").text)
    assert "These campaigns were paused when this account's connection changed" in settings
    assert "Q4 outreach" in settings
    assert "On hold" not in settings
    assert 'class="banner"' not in settings
    done = client.post(
        f"/mailboxes/{mailbox.id}/resume-all",
        data={"csrftoken": csrf_from(settings), "confirmed": "1"},
    )
    assert "Resumed 1 campaign: “Q4 outreach”." in html.unescape(done.text)
    db.expire_all()
    assert broken.status is CampaignStatus.ACTIVE
    assert (mine.status, mine.pause_reason) == (CampaignStatus.PAUSED, None)
    assert db.get(Campaign, broken.id).pause_reason is None  # type: ignore[union-attr]


def test_paused_reason_is_kept_for_user_paused_campaigns(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    mine = campaign_on(db, "ada@gmail.test", "On hold", CampaignStatus.PAUSED)
    mine.pause_reason = PauseReason.USER
    db.commit()
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    db.expire_all()
    assert mine.pause_reason is PauseReason.USER


def test_resume_all_through_the_api(client: TestClient, db: Session, sandbox: Sandbox) -> None:
    from sendwell.accounts import service as accounts

    link(client, "ada@gmail.test")
    campaign = campaign_on(db, "ada@gmail.test", "Q4 outreach")
    mailbox = db.scalars(select(Mailbox)).one()
    user = accounts.get_user_by_email(db, "ada@example.com")
    _token, token = accounts.create_api_token(db, user, "t")
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    refused = client.post(f"/api/v1/mailboxes/{mailbox.id}/resume-campaigns", headers=headers)
    assert refused.status_code == 409
    assert "needs reauthentication" in refused.json()["error"]["message"]
    reauth = client.post(
        f"/mailboxes/{mailbox.id}/reauthenticate",
        data={"csrftoken": csrf_from(client.get("/messaging/settings").text)},
        follow_redirects=False,
    )
    finish_at_provider(client, reauth, "ada@gmail.test")
    resumed = client.post(f"/api/v1/mailboxes/{mailbox.id}/resume-campaigns", headers=headers)
    assert resumed.json() == [campaign.id]
    db.expire_all()
    assert campaign.status is CampaignStatus.ACTIVE
