"""The notification emails hear the other features' changes: an email arrives for a change
that committed, after its campaigns paused, and never for one that rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message

import pytest
from sqlalchemy import Engine, select

from sendwell.campaigns import service as campaigns
from sendwell.campaigns import subscribers as campaign_subscribers
from sendwell.db import session_scope
from sendwell.kit import events
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes.service import transition
from sendwell.metrics import subscribers as metric_subscribers
from sendwell.models import MailboxEventKind, MailboxStatus, PauseReason, User
from sendwell.notifications import subscribers as notifications
from sendwell.webhooks import subscribers as webhook_subscribers
from tests.conftest import Database
from tests.dispatch.conftest import SENDER, World, linked_world
from tests.mailboxes.conftest import link
from tests.mailboxes.test_reauth import Inbox, smtp  # noqa: F401 - fixture
from tests.sandbox_support import Sandbox

ONE_STEP = [("Hello {{ first_name }}", "Hi.", 0)]


class Refused(Exception):
    """Something later in the unit of work failed."""


@pytest.fixture
def mailed(
    database: Database,
    engine: Engine,
    sandbox: Sandbox,
    smtp: tuple[Inbox, int],  # noqa: F811 - the fixture
) -> Iterator[tuple[World, Inbox]]:
    """A world whose server has outgoing mail (SENDWELL_SMTP_URL) for its notices."""
    inbox, port = smtp
    with linked_world(
        database,
        engine,
        sandbox,
        lambda client: link(client, SENDER),
        smtp_url=f"smtp://127.0.0.1:{port}?from=sendwell@example.com",
    ) as world:
        yield world, inbox


def test_a_mailbox_change_is_heard_by_the_outbox_then_campaigns_then_the_emails() -> None:
    """The outbox first (ordering keys), the pauses next, the email counting them after."""
    assert events.subscribers_of(events.MailboxStatusChanged) == [
        webhook_subscribers._mailbox_status_changed,
        campaign_subscribers.pause_on_mailbox_change,
        notifications.reconnect_needed,
        metric_subscribers.count_mailbox_change,
    ]


def _break_mailbox(world: World, *, then_fail: bool) -> None:
    with session_scope(world.factory) as db:
        mailbox = mailbox_repo.get_mailbox(db, world.mailbox_id())
        assert mailbox is not None
        transition(
            db,
            mailbox,
            MailboxStatus.REAUTH_REQUIRED,
            kind=MailboxEventKind.REAUTH_REQUIRED,
            reason="Access was revoked.",
        )
        if then_fail:
            raise Refused


def _body(message: Message) -> str:
    return message.get_payload(decode=True).decode()  # type: ignore[union-attr]


def _subject(message: Message) -> str:
    return str(make_header(decode_header(str(message["Subject"]))))


def test_the_owner_hears_of_a_break_that_committed_and_not_of_one_rolled_back(
    mailed: tuple[World, Inbox],
) -> None:
    world, inbox = mailed
    world.campaign(ONE_STEP, ["ann@example.com"])

    with pytest.raises(Refused):
        _break_mailbox(world, then_fail=True)
    assert inbox.messages == []

    _break_mailbox(world, then_fail=False)
    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == f"Action needed: reconnect {SENDER} in Sendwell"
    body = _body(mail)
    assert "1 campaign is paused until you reconnect it and resume." in body
    assert "Why: Access was revoked." in body


def _pause_for_bounces(world: World, campaign_id: int, *, then_fail: bool) -> None:
    with session_scope(world.factory) as db:
        campaigns.pause(
            db,
            None,
            campaign_id,
            reason=PauseReason.BOUNCE_RATE,
            detail="2 of the last 50 emails bounced.",
        )
        if then_fail:
            raise Refused


def test_the_owner_hears_of_a_bounce_pause_only_once_it_commits(
    mailed: tuple[World, Inbox],
) -> None:
    world, inbox = mailed
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])

    with pytest.raises(Refused):
        _pause_for_bounces(world, campaign_id, then_fail=True)
    assert inbox.messages == []

    _pause_for_bounces(world, campaign_id, then_fail=False)
    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert _subject(mail) == "Paused: too many emails of “Outreach” bounced"
    body = _body(mail)
    assert "paused your campaign “Outreach”: 2 of the last 50 emails bounced." in body
    assert f"/campaigns/{campaign_id}#recipients" in body


def test_a_pause_for_another_reason_emails_nobody(mailed: tuple[World, Inbox]) -> None:
    world, inbox = mailed
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    with session_scope(world.factory) as db:
        campaigns.pause(db, None, campaign_id, reason=PauseReason.SEND_ERRORS)
    assert inbox.messages == []


def _workspace_expiring(world: World, *, then_fail: bool) -> None:
    with session_scope(world.factory) as db:
        admin = db.scalars(select(User)).first()
        assert admin is not None
        events.publish(
            db,
            events.WorkspaceExpiring(
                workspace_id=admin.workspace_id,
                expires_at=datetime(2031, 3, 1, tzinfo=UTC),
                reason="microsoft_client_secret",
                why="The Microsoft client secret expires.",
                action="Add a new client secret.",
            ),
        )
        if then_fail:
            raise Refused


def test_admins_hear_of_a_workspace_expiry_only_once_it_commits(
    mailed: tuple[World, Inbox],
) -> None:
    world, inbox = mailed

    with pytest.raises(Refused):
        _workspace_expiring(world, then_fail=True)
    assert inbox.messages == []

    _workspace_expiring(world, then_fail=False)
    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Action needed by 2031-03-01: the Microsoft client secret expires"
    assert "/messaging/expiry" in _body(mail)
