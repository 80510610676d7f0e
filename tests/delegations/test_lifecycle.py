"""Sending from a teammate's mailbox with their approval: asked, approved in the teammate's own
session, sent, withdrawn (the campaign pauses as for a disconnect), approved again and resumed
from where it left off; and the seed's break → pause → reauthenticate → Resume, with the
teammate asked to reauthenticate."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import (
    Delegation,
    DelegationStatus,
    Enrollment,
    MailboxEvent,
    MailboxEventKind,
)
from tests.conftest import post_form
from tests.delegations.conftest import TEAMMATE_MAILBOX, Team, make_team
from tests.sandbox_support import Sandbox, consent_flow
from tests.teams.conftest import Inbox, text

PEOPLE = [f"person{i}@example.com" for i in range(4)]
# A first email now and a follow-up a day later (made due by hand, skipping the wait).
TWO_STEPS: list[dict[str, Any]] = [
    {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}."},
    {"subject": "", "body": "Any thoughts?", "delay_minutes": 1440},
]


def every_step_once(people: list[str]) -> Counter[tuple[str, str]]:
    """What each recipient should have received: each step, exactly once."""
    names = [email.split("@")[0] for email in people]
    return Counter(
        [(f"{n}@example.com", f"Hello {n}") for n in names]
        + [(f"{n}@example.com", f"Re: Hello {n}") for n in names]
    )


def follow_ups_due(team: Team, campaign_id: int) -> None:
    with session_scope(team.factory) as db:
        db.execute(
            update(Enrollment)
            .where(Enrollment.campaign_id == campaign_id, Enrollment.next_due_at.is_not(None))
            .values(next_due_at=utcnow() - timedelta(seconds=1))
        )


def test_ask_approve_send_withdraw_approve_again_and_resume(team: Team) -> None:
    delegation_id = team.ask()
    page = f"/delegations/{delegation_id}"

    # Grace sees the request on her Settings tab and exactly what approving allows.
    settings = text(team.grace.get("/messaging/settings"))
    assert "Shared with teammates" in settings
    assert "Waiting for approval" in settings
    request_page = text(team.grace.get(page))
    assert "Ada Lovelace asks to send from your email account" in request_page
    assert "Ada Lovelace may create campaigns that send from the account you choose" in request_page
    assert "cannot read your mail" in request_page
    assert "For the platform engineer roles" in request_page

    # Before Grace approves, her account is not Ada's to use — not even for the admin.
    team.link_and_approve(delegation_id)
    with session_scope(team.factory) as db:
        delegation = db.get(Delegation, delegation_id)
        assert delegation is not None
        assert delegation.status is DelegationStatus.APPROVED
        assert delegation.granted_at is not None
        assert delegation.mailbox_id == team.mailbox_id()
    assert "Teammates' email accounts" in text(team.ada.get("/messaging/settings"))
    (listed,) = team.api("GET", "/delegations").json()
    assert listed["you_are"] == "delegate"
    assert (listed["mailbox_id"], listed["mailbox_email"]) == (team.mailbox_id(), TEAMMATE_MAILBOX)
    assert listed["status"] == "approved"
    editor = text(team.ada.get("/campaigns/new"))
    assert TEAMMATE_MAILBOX in editor

    campaign_id = team.campaign(PEOPLE, TWO_STEPS)
    dispatcher = team.dispatcher()
    dispatcher.run_until_idle()
    sent_before = len(team.sent())
    assert sent_before == len(PEOPLE)  # every first email; the follow-ups wait a day

    # Grace sees the campaign sent from her account, and withdraws.
    assert "Platform engineers" in text(team.grace.get(page))
    withdrawn = team.withdraw(delegation_id)
    assert "Approval withdrawn: Ada Lovelace can no longer send from grace@gmail.test" in text(
        withdrawn
    )
    assert team.status(campaign_id) == ("paused", "delegation_withdrawn")
    campaigns_tab = text(team.ada.get("/messaging/campaigns"))
    assert "Paused because the sending account's owner withdrew their approval." in campaigns_tab
    refused = team.api("POST", f"/campaigns/{campaign_id}/resume")
    assert refused.status_code == 409
    assert (
        "Grace Hopper has not approved Ada Lovelace to send from grace@gmail.test"
        in (refused.json()["error"]["message"])
    )
    again = team.api(
        "POST",
        "/campaigns",
        name="Another",
        mailbox_id=team.mailbox_id(),
        steps=[{"subject": "a", "body": "b"}],
    )
    assert again.status_code == 422
    follow_ups_due(team, campaign_id)
    dispatcher.run_until_idle()
    assert len(team.sent()) == sent_before  # nothing goes out while withdrawn

    # Approved again (the same account), Ada resumes: the rest, each exactly once.
    team.approve(delegation_id, "Approve again")
    resumed = post_form(team.ada, page, f"{page}/resume-all", {})
    assert "Resumed 1 campaign: “Platform engineers”." in text(resumed)
    dispatcher.run_until_idle()
    assert Counter(team.sent()) == every_step_once(PEOPLE)
    assert team.status(campaign_id) == ("completed", None)
    with session_scope(team.factory) as db:
        kinds = db.scalars(
            select(MailboxEvent.kind)
            .where(MailboxEvent.mailbox_id == team.mailbox_id())
            .order_by(MailboxEvent.id)
        ).all()
    assert [
        k for k in kinds if k in (MailboxEventKind.DELEGATED, MailboxEventKind.DELEGATION_WITHDRAWN)
    ] == [
        MailboxEventKind.DELEGATED,
        MailboxEventKind.DELEGATION_WITHDRAWN,
        MailboxEventKind.DELEGATED,
    ]


def test_a_broken_delegated_account_asks_its_owner_to_reauthenticate(
    settings: object, engine: Engine, sandbox: Sandbox, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    with_mail = settings.model_copy(  # type: ignore[attr-defined]
        update={"smtp_url": f"smtp://127.0.0.1:{port}?from=sendwell@example.com"}
    )
    for team in make_team(with_mail, engine, sandbox):
        delegation_id = team.ask()
        (request_mail,) = inbox.messages
        assert request_mail["To"] == "grace@example.com"
        assert request_mail["Subject"] == "Ada Lovelace asks to send from your email account"
        team.link_and_approve(delegation_id)
        campaign_id = team.campaign(PEOPLE, TWO_STEPS)
        dispatcher = team.dispatcher()
        dispatcher.run_until_idle()
        sent_before = len(team.sent())
        follow_ups_due(team, campaign_id)

        # Break: the grant dies at Google; the health check finds it.
        sandbox.admin("revoke", {"mailbox": TEAMMATE_MAILBOX})
        app = team.ada.app
        check_connections(team.factory, app.state.services)  # type: ignore[attr-defined]
        assert team.status(campaign_id) == ("paused", "mailbox_reauth_required")

        # The teammate is the one asked: her banner, her email; Ada is told she was asked.
        grace_page = text(team.grace.get("/messaging/campaigns"))
        assert "grace@gmail.test needs reauthentication." in grace_page
        assert ">Reauthenticate</button>" in grace_page
        reauth_mail = inbox.messages[-1]
        assert reauth_mail["To"] == "grace@example.com"
        assert reauth_mail["Subject"] == "Action needed: reconnect grace@gmail.test in Sendwell"
        ada_settings = text(team.ada.get("/messaging/settings"))
        assert "Reauthentication required: Grace Hopper has been asked to reconnect it." in (
            ada_settings
        )
        assert "grace@gmail.test needs reauthentication." not in ada_settings
        refused = team.api("POST", f"/campaigns/{campaign_id}/resume")
        assert refused.status_code == 409
        assert "Its owner must reconnect it" in refused.json()["error"]["message"]

        # Reauthenticate (Grace), then Resume (Ada): the rest, each exactly once.
        mailbox_id = team.mailbox_id()
        started = post_form(
            team.grace,
            "/messaging/settings",
            f"/mailboxes/{mailbox_id}/reauthenticate",
            {},
            follow_redirects=False,
        )
        params = consent_flow(started.headers["location"], TEAMMATE_MAILBOX)
        back = team.grace.get("/mailboxes/callback/google", params=params)
        assert "grace@gmail.test is reconnected." in text(back)
        assert len(team.sent()) == sent_before
        resumed = team.api("POST", f"/campaigns/{campaign_id}/resume")
        assert resumed.status_code == 200, resumed.text
        dispatcher.run_until_idle()
        assert Counter(team.sent()) == every_step_once(PEOPLE)


def test_deactivating_the_teammate_ends_the_approval_and_pauses(team: Team) -> None:
    delegation_id = team.ask()
    team.link_and_approve(delegation_id)
    campaign_id = team.campaign(PEOPLE, TWO_STEPS)
    grace_id = team.user_id("grace@example.com")
    done = post_form(team.ada, "/team", f"/team/users/{grace_id}/deactivate", {})
    assert "and 1 campaign paused" in text(done)
    assert team.status(campaign_id) == ("paused", "delegation_withdrawn")
    with session_scope(team.factory) as db:
        delegation = db.get(Delegation, delegation_id)
        assert delegation is not None
        assert delegation.status is DelegationStatus.WITHDRAWN


def test_only_the_owner_approves_and_only_with_their_own_account(team: Team) -> None:
    delegation_id = team.ask()
    page = f"/delegations/{delegation_id}"
    # The recruiter cannot approve her own request.
    shown = team.ada.get(page)
    assert ">Approve</button>" not in shown.text
    assert "Waiting for Grace Hopper to approve." in text(shown)
    refused = post_form(team.ada, page, f"{page}/approve", {"mailbox_id": "1"})
    assert refused.status_code == 404
    # Grace cannot approve an account that is not hers.
    nothing = post_form(team.grace, page, f"{page}/approve", {"mailbox_id": "987654"})
    assert nothing.status_code == 422
    assert "Choose one of your connected email accounts." in text(nothing)
    # Asking oneself is refused with the way to do it.
    own = post_form(
        team.ada,
        "/messaging/settings",
        "/delegations",
        {"teammate_id": str(team.user_id("ada@example.com"))},
    )
    assert "To send from your own account, choose “Your email account”." in text(own)


def test_a_member_without_teammates_is_told_how_to_get_some(team: Team) -> None:
    lone = TestClient(team.ada.app)
    del lone
    dialog = text(team.grace.get("/messaging/settings"))
    assert "A teammate's email account" in dialog
    assert "Ada Lovelace (ada@example.com)" in dialog
