"""Campaigns from an "Other" account through real servers: what each recipient's mailbox holds."""

from __future__ import annotations

import itertools
from email.message import Message
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.mailboxes.tasks import check_connections
from sendwell.models import (
    Campaign,
    CampaignStatus,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    MailboxStatus,
    PauseReason,
    SendLedger,
    Suppression,
)
from sendwell.providers.base import TAG_HEADER
from tests.conftest import csrf_from
from tests.imap_smtp.conftest import SENDER, MailServers, Outreach, link_other

THREE_STEPS = [
    ("Quick question", "Hello, step one.", 0),
    ("", "Hello, step two.", 1440),
    ("", "Hello, step three.", 1440),
]


def _sequence(messages: list[Message]) -> list[str]:
    return [str(m["Subject"]) for m in messages]


def assert_threaded(messages: list[Message]) -> None:
    """Each follow-up answers the message before it and carries the whole chain."""
    for earlier, later in itertools.pairwise(messages):
        assert later["In-Reply-To"] == earlier["Message-ID"]
        assert str(messages[0]["Message-ID"]) in str(later["References"])


def assert_sent_once_each(mail: MailServers, expected: int) -> None:
    """The sender's Sent folder holds one copy of every message sent, none twice."""
    tags = [str(m[TAG_HEADER]) for m in mail.messages(SENDER, "Sent")]
    assert len(tags) == expected
    assert len(set(tags)) == expected


def test_three_steps_threaded_replies_and_bounces_stop(
    outreach: Outreach, mail: MailServers, db: Session
) -> None:
    people = ["ann@example.com", "bob@example.com", "cy@example.com"]
    unknown_local, unknown_remote = "nobody@example.com", "gone@example.net"
    campaign_id = outreach.campaign(THREE_STEPS, [*people, unknown_local, unknown_remote])
    dispatcher = outreach.dispatcher()

    dispatcher.run_until_idle()
    for person in people:
        assert _sequence(mail.messages(person)) == ["Quick question"]
    reports = [m for m in mail.messages(SENDER) if m.get_content_type() == "multipart/report"]
    assert len(reports) == 1, "the remote domain's failure comes back as a delivery report"
    outreach.reply("ann@example.com", mail.messages("ann@example.com")[0])

    dispatcher.run_until_idle()
    outreach.due_now(campaign_id)
    dispatcher.run_until_idle()
    outreach.due_now(campaign_id)
    dispatcher.run_until_idle()

    assert _sequence(mail.messages("ann@example.com")) == ["Quick question"]
    for person in ("bob@example.com", "cy@example.com"):
        received = mail.messages(person)
        assert _sequence(received) == ["Quick question", "Re: Quick question", "Re: Quick question"]
        assert_threaded(received)
    enrollments = outreach.enrollments(campaign_id)
    assert enrollments["ann@example.com"].status is EnrollmentStatus.REPLIED
    assert enrollments[unknown_local].status is EnrollmentStatus.BOUNCED
    assert enrollments[unknown_remote].status is EnrollmentStatus.BOUNCED
    assert "Undelivered Mail Returned to Sender" in enrollments[unknown_remote].status_reason
    suppressed = set(db.scalars(select(Suppression.email)))
    assert {unknown_local, unknown_remote} <= suppressed
    assert "ann@example.com" not in suppressed
    # Step one to four accepted addresses, then two follow-ups each to bob and cy.
    assert_sent_once_each(mail, 4 + 2 + 2)
    assert db.get(Campaign, campaign_id).status is CampaignStatus.COMPLETED  # type: ignore[union-attr]


def _post_from(client: TestClient, page: str, action: str, data: dict[str, str]) -> Any:
    token = csrf_from(client.get(page).text)
    return client.post(action, data={"csrftoken": token, **data}, follow_redirects=False)


def test_a_password_change_pauses_and_the_new_password_resumes_exactly_once(
    outreach: Outreach, mail: MailServers, db: Session
) -> None:
    people = ["ann@example.com", "bob@example.com"]
    campaign_id = outreach.campaign(THREE_STEPS, people)
    dispatcher = outreach.dispatcher()
    dispatcher.run_until_idle()
    mail.dovecot.set_password(SENDER, "second app password")

    outreach.due_now(campaign_id)
    dispatcher.run_until_idle()
    mailbox = db.get(Mailbox, outreach.mailbox_id())
    campaign = db.get(Campaign, campaign_id)
    assert mailbox is not None
    assert campaign is not None
    assert mailbox.status is MailboxStatus.REAUTH_REQUIRED
    assert "refused the user name or password" in mailbox.status_reason
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.MAILBOX_REAUTH_REQUIRED,
    )
    for person in people:
        assert _sequence(mail.messages(person)) == ["Quick question"]
    banner = outreach.client.get("/messaging/campaigns").text
    assert "ada@example.com" in banner
    assert "Reauthentication required" in outreach.client.get("/messaging/settings").text

    client = outreach.client
    started = _post_from(
        client, "/messaging/settings", f"/mailboxes/{mailbox.id}/reauthenticate", {}
    )
    assert started.status_code == 303
    password_page = started.headers["location"]
    assert password_page == f"/mailboxes/{mailbox.id}/password"
    page = client.get(password_page).text
    assert f'value="{mail.smtps_port}"' in page
    refused = _post_from(
        client, password_page, password_page, mail.form(password="first app password")
    )
    assert refused.status_code == 422
    assert "refused the user name or password" in refused.text
    accepted = _post_from(
        client, password_page, password_page, mail.form(password="second app password")
    )
    assert accepted.status_code == 303, accepted.text
    assert "ada@example.com is reconnected." in client.get(accepted.headers["location"]).text
    db.expire_all()
    assert db.get(Campaign, campaign_id).status is CampaignStatus.PAUSED  # type: ignore[union-attr]

    resumed = _post_from(
        client, "/messaging/settings", f"/mailboxes/{mailbox.id}/resume-all", {"confirmed": "1"}
    )
    assert resumed.status_code == 303
    dispatcher.run_until_idle()
    outreach.due_now(campaign_id)
    dispatcher.run_until_idle()

    for person in people:
        received = mail.messages(person)
        assert _sequence(received) == ["Quick question", "Re: Quick question", "Re: Quick question"]
        assert_threaded(received)
    assert_sent_once_each(mail, 6)


def test_a_connection_cut_after_data_sends_no_duplicate(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    response = link_other(client, mail.form(smtp_port=str(mail.proxy.port)))
    assert response.status_code == 303, response.text
    app: Any = client.app
    outreach = Outreach(client, app.state.session_factory, app.state.services, mail)
    people = ["ann@example.com", "bob@example.com"]
    campaign_id = outreach.campaign(THREE_STEPS[:2], people)
    mail.proxy.drop_next_reply()
    dispatcher = outreach.dispatcher()

    dispatcher.run_until_idle()
    outreach.due_now(campaign_id)
    dispatcher.run_until_idle()

    assert mail.proxy.dropped == 1
    for person in people:
        received = mail.messages(person)
        assert _sequence(received) == ["Quick question", "Re: Quick question"]
        assert_threaded(received)
    statuses = set(
        db.scalars(select(SendLedger.status).where(SendLedger.campaign_id == campaign_id))
    )
    assert statuses == {LedgerStatus.SENT}
    assert_sent_once_each(mail, 4)


def test_the_health_check_finds_a_changed_password_with_nothing_to_send(
    outreach: Outreach, mail: MailServers, db: Session
) -> None:
    report = check_connections(outreach.factory, outreach.services)
    assert (report.checked, report.healthy) == (1, 1)
    mail.dovecot.set_password(SENDER, "changed by an administrator")

    report = check_connections(outreach.factory, outreach.services)

    assert (report.checked, report.failed) == (1, 1)
    mailbox = db.get(Mailbox, outreach.mailbox_id())
    assert mailbox is not None
    assert mailbox.status is MailboxStatus.REAUTH_REQUIRED
    assert mailbox.status_code == "smtp_535"


def test_a_sender_the_host_refuses_suppresses_no_recipient(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    """Postfix refuses a From address the login does not own, in reply to RCPT: the
    recipients are not at fault, so none is bounced or suppressed."""
    form = mail.form(username="bob@example.com", password=mail.dovecot.passwords["bob@example.com"])
    assert link_other(client, form).status_code == 303
    app: Any = client.app
    outreach = Outreach(client, app.state.session_factory, app.state.services, mail)
    people = ["ann@example.com", "cy@example.com"]
    campaign_id = outreach.campaign(THREE_STEPS, people)

    outreach.dispatcher().run_until_idle()

    for person in people:
        assert mail.messages(person) == []
    enrollments = outreach.enrollments(campaign_id)
    assert {enrollments[p].status for p in people} == {EnrollmentStatus.NOT_STARTED}
    assert list(db.scalars(select(Suppression.email))) == []
    errors = list(db.scalars(select(SendLedger.error).where(SendLedger.campaign_id == campaign_id)))
    assert len(errors) == 2
    assert all("Sender address rejected: not owned by user bob@example.com" in e for e in errors)
