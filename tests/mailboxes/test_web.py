"""The seed's Settings flows through the real app and the sandbox: link, reconnect, remove."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import (
    Campaign,
    CampaignStatus,
    LinkAttempt,
    Mailbox,
    MailboxEvent,
    MailboxStatus,
    PauseReason,
)
from tests.conftest import csrf_from
from tests.mailboxes.conftest import finish_at_provider, link, start_link
from tests.sandbox_support import Sandbox, consent_flow


def page_text(client: TestClient, path: str) -> str:
    return html.unescape(client.get(path).text)


def mailboxes(db: Session) -> list[Mailbox]:
    db.expire_all()
    return list(db.scalars(select(Mailbox).order_by(Mailbox.id)))


def test_link_a_google_account(client: TestClient, db: Session, sandbox: Sandbox) -> None:
    response = link(client, "ada@gmail.test")
    assert response.headers["location"] == "/messaging/settings"
    settings = page_text(client, "/messaging/settings")
    assert "ada@gmail.test is connected." in settings
    assert "Your connected email accounts" in settings
    assert "Reauthenticate" not in settings
    (mailbox,) = mailboxes(db)
    assert (mailbox.provider, mailbox.status) == ("google", MailboxStatus.CONNECTED)
    assert mailbox.subject == sandbox.state.mailbox("ada@gmail.test").subject


def test_link_a_microsoft_account(client: TestClient, db: Session) -> None:
    link(client, "ada@contoso.outlook.test")
    assert "ada@contoso.outlook.test is connected." in page_text(client, "/messaging/settings")
    (mailbox,) = mailboxes(db)
    assert mailbox.provider == "microsoft"


def test_authorization_request_carries_state_pkce_and_login_hint(client: TestClient) -> None:
    response = start_link(client, "ada@gmail.test")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["login_hint"] == ["ada@gmail.test"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/mailboxes/callback/google"]
    assert len(query["state"][0]) >= 32


def test_link_requires_the_own_account_checkbox(client: TestClient, db: Session) -> None:
    token = csrf_from(client.get("/messaging/settings").text)
    response = client.post("/mailboxes/link", data={"csrftoken": token, "email": "ada@gmail.test"})
    assert response.status_code == 422
    assert "Tick “Your email account”" in html.unescape(response.text)


def test_unknown_host_asks_the_user_to_choose(client: TestClient) -> None:
    response = start_link(client, "ada@corp.test")
    assert response.status_code == 200
    assert "Which service hosts ada@corp.test?" in response.text
    chosen = start_link(client, "ada@corp.test", provider="google")
    assert chosen.status_code == 303


def test_cancel_connects_nothing(client: TestClient, db: Session) -> None:
    response = link(client, "ada@gmail.test", action="cancel")
    assert response.headers["location"] == "/messaging/settings"
    assert "You cancelled at Google. No account was linked." in page_text(
        client, "/messaging/settings"
    )
    assert mailboxes(db) == []


def test_unticked_permission_is_named_and_nothing_is_saved(client: TestClient, db: Session) -> None:
    response = link(
        client, "ada@gmail.test", untick=["https://www.googleapis.com/auth/gmail.metadata"]
    )
    assert response.status_code == 403
    text = html.unescape(response.text)
    assert "ada@gmail.test was not connected" in text
    assert "View your email message metadata such as labels and headers" in text
    assert "Link again" in text
    assert mailboxes(db) == []


def test_microsoft_admin_approval_page(client: TestClient, db: Session) -> None:
    response = link(client, "needs-admin@contoso.outlook.test")
    assert response.status_code == 403
    text = html.unescape(response.text)
    assert "Your administrator must approve Sendwell" in text
    assert "/organizations/v2.0/adminconsent?client_id=" in text
    assert "AADSTS90094" in text
    printable = page_text(client, "/mailboxes/admin-approval/microsoft")
    assert "Mail.ReadBasic" in printable
    assert "Why Sendwell needs it" in printable
    assert mailboxes(db) == []


def test_different_address_waits_for_confirmation(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    response = finish_at_provider(client, started, "bob@gmail.test")
    text = html.unescape(response.text)
    assert "You signed in as bob@gmail.test" in text
    assert mailboxes(db) == []
    confirm = re.search(r'action="(/mailboxes/link/\d+/confirm)"', response.text)
    assert confirm
    client.post(confirm.group(1), data={"csrftoken": csrf_from(response.text)})
    assert [m.email for m in mailboxes(db)] == ["bob@gmail.test"]


def test_different_address_can_be_declined(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    response = finish_at_provider(client, started, "bob@gmail.test")
    discard = re.search(r'action="(/mailboxes/link/\d+/discard)"', response.text)
    assert discard
    client.post(discard.group(1), data={"csrftoken": csrf_from(response.text)})
    assert mailboxes(db) == []
    assert (
        db.scalar(
            select(func.count())
            .select_from(LinkAttempt)
            .where(LinkAttempt.pending_grant.is_not(None))
        )
        == 0
    )


def test_replayed_state_is_refused(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    params = consent_flow(started.headers["location"], "ada@gmail.test")
    first = client.get("/mailboxes/callback/google", params=params, follow_redirects=False)
    assert first.status_code == 303
    again = client.get("/mailboxes/callback/google", params=params)
    assert again.status_code == 409
    assert "already used" in again.text


def test_forged_state_is_refused(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    params = consent_flow(started.headers["location"], "ada@gmail.test")
    params["state"] = "forged-state-value"
    response = client.get("/mailboxes/callback/google", params=params)
    assert response.status_code == 409
    assert "does not match any link Sendwell started" in response.text
    assert mailboxes(db) == []


def test_expired_state_is_refused(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    params = consent_flow(started.headers["location"], "ada@gmail.test")
    attempt = db.scalars(select(LinkAttempt)).one()
    attempt.expires_at -= timedelta(hours=1)
    db.commit()
    response = client.get("/mailboxes/callback/google", params=params)
    assert response.status_code == 409
    assert "expired" in response.text
    assert mailboxes(db) == []


def test_callback_on_the_other_providers_path_is_refused(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    params = consent_flow(started.headers["location"], "ada@gmail.test")
    response = client.get("/mailboxes/callback/microsoft", params=params)
    assert response.status_code == 409
    assert mailboxes(db) == []


def test_state_is_bound_to_the_browser_session(client: TestClient, db: Session) -> None:
    started = start_link(client, "ada@gmail.test")
    params = consent_flow(started.headers["location"], "ada@gmail.test")
    token = csrf_from(client.get("/account").text)
    client.post("/sign-out", data={"csrftoken": token})
    from tests.conftest import STRONG_PASSWORD, post_form

    post_form(
        client, "/sign-in", "/sign-in", {"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    response = client.get("/mailboxes/callback/google", params=params)
    assert response.status_code == 409
    assert "another browser session" in response.text
    assert mailboxes(db) == []


def test_remove_account_disconnects_and_keeps_history(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    (mailbox,) = mailboxes(db)
    detail = client.get(f"/mailboxes/{mailbox.id}")
    assert "Remove Account" in detail.text
    assert detail.text.count(">Disconnect</button>") == 2
    removed = client.post(
        f"/mailboxes/{mailbox.id}/disconnect", data={"csrftoken": csrf_from(detail.text)}
    )
    (mailbox,) = mailboxes(db)
    assert mailbox.status is MailboxStatus.DISCONNECTED
    assert (mailbox.access_token, mailbox.refresh_token) == (None, None)
    settings = html.unescape(removed.text)
    assert "ada@gmail.test is disconnected. Its history is kept." in settings
    assert "Disconnected accounts" in settings
    kinds = [e.kind.value for e in db.scalars(select(MailboxEvent).order_by(MailboxEvent.id))]
    assert kinds == ["connected", "disconnected"]
    assert (
        sandbox.state.live_token(
            next(t.value for t in sandbox.state.tokens.values() if t.kind == "refresh"), "refresh"
        )
        is None
    )


def test_relinking_a_removed_account_restores_the_same_record(
    client: TestClient, db: Session
) -> None:
    link(client, "ada@gmail.test")
    (first,) = mailboxes(db)
    client.post(
        f"/mailboxes/{first.id}/disconnect",
        data={"csrftoken": csrf_from(client.get(f"/mailboxes/{first.id}").text)},
    )
    link(client, "ada@gmail.test")
    (again,) = mailboxes(db)
    assert again.id == first.id
    assert again.status is MailboxStatus.CONNECTED


def test_revoked_grant_is_found_by_the_health_check_and_reauthenticated(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    link(client, "ada@gmail.test")
    (before,) = mailboxes(db)
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    report = check_connections(client.app.state.session_factory, services)  # type: ignore[attr-defined]
    assert (report.checked, report.failed) == (1, 1)
    (mailbox,) = mailboxes(db)
    assert mailbox.status is MailboxStatus.REAUTH_REQUIRED
    assert mailbox.status_code
    settings = client.get("/messaging/settings").text
    assert "Reauthentication required" in settings
    assert 'aria-label="Warning"' in settings
    reauth = client.post(
        f"/mailboxes/{mailbox.id}/reauthenticate",
        data={"csrftoken": csrf_from(settings)},
        follow_redirects=False,
    )
    done = finish_at_provider(client, reauth, "ada@gmail.test")
    assert done.headers["location"] == "/messaging/settings"
    assert "ada@gmail.test is reconnected." in page_text(client, "/messaging/settings")
    (after,) = mailboxes(db)
    assert after.id == before.id
    assert after.status is MailboxStatus.CONNECTED
    kinds = [e.kind.value for e in db.scalars(select(MailboxEvent).order_by(MailboxEvent.id))]
    assert kinds[0] == "connected"
    assert "reauth_required" in kinds
    assert kinds[-1] == "reauthenticated"


def test_recreated_mailbox_is_a_new_account(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    link(client, "ada@gmail.test")
    sandbox.admin("recreate", {"mailbox": "ada@gmail.test"})
    link(client, "ada@gmail.test")
    old, new = mailboxes(db)
    assert old.status is MailboxStatus.DISCONNECTED
    assert new.status is MailboxStatus.CONNECTED
    assert old.subject != new.subject
    assert "it was re-created" in page_text(client, "/messaging/settings")


def test_email_settings_are_validated(client: TestClient, db: Session) -> None:
    link(client, "ada@gmail.test")
    (mailbox,) = mailboxes(db)
    page = client.get(f"/mailboxes/{mailbox.id}")
    bad = client.post(
        f"/mailboxes/{mailbox.id}/settings",
        data={
            "csrftoken": csrf_from(page.text),
            "daily_cap": "0",
            "min_gap_seconds": "60",
            "display_name": "Ada",
            "signature": "",
        },
    )
    assert bad.status_code == 422
    # ada@gmail.test is a Google Workspace address: at most 2,000 a day.
    assert "daily limit must be between 1 and 2,000" in bad.text
    (unchanged,) = mailboxes(db)
    assert unchanged.daily_cap == 1000
    good = client.post(
        f"/mailboxes/{mailbox.id}/settings",
        data={
            "csrftoken": csrf_from(page.text),
            "daily_cap": "200",
            "min_gap_seconds": "100",
            "display_name": "Ada L.",
            "signature": "Ada\r\nTalent team",
        },
    )
    assert "Email settings saved." in good.text
    (saved,) = mailboxes(db)
    assert (saved.daily_cap, saved.min_gap_seconds, saved.display_name, saved.signature) == (
        200,
        100,
        "Ada L.",
        "Ada\nTalent team",
    )


def active_campaign(
    db: Session,
    mailbox: Mailbox,
    name: str,
    status: CampaignStatus = CampaignStatus.ACTIVE,
    reason: PauseReason | None = None,
) -> Campaign:
    campaign = Campaign(
        workspace_id=mailbox.workspace_id,
        owner_id=mailbox.owner_id,
        mailbox_id=mailbox.id,
        name=name,
        status=status,
        pause_reason=reason,
    )
    db.add(campaign)
    db.commit()
    return campaign


def test_remove_account_pauses_its_active_campaigns(client: TestClient, db: Session) -> None:
    link(client, "ada@gmail.test")
    (mailbox,) = mailboxes(db)
    active = active_campaign(db, mailbox, "Q4 outreach")
    mine = active_campaign(db, mailbox, "On hold", CampaignStatus.PAUSED, PauseReason.USER)
    client.post(
        f"/mailboxes/{mailbox.id}/disconnect",
        data={"csrftoken": csrf_from(client.get(f"/mailboxes/{mailbox.id}").text)},
    )
    db.expire_all()
    assert (active.status, active.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.MAILBOX_DISCONNECTED,
    )
    assert (mine.status, mine.pause_reason) == (CampaignStatus.PAUSED, PauseReason.USER)


def test_dead_grant_pauses_campaigns_in_the_same_step(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    link(client, "ada@gmail.test")
    (mailbox,) = mailboxes(db)
    campaign = active_campaign(db, mailbox, "Q4 outreach")
    sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    check_connections(client.app.state.session_factory, services)  # type: ignore[attr-defined]
    db.expire_all()
    assert campaign.pause_reason is PauseReason.MAILBOX_REAUTH_REQUIRED
    listing = html.unescape(client.get("/messaging/campaigns").text)
    assert "Paused because the sending account needs reauthentication." in listing


def test_reauthenticating_a_healthy_account_pauses_its_campaigns(
    client: TestClient, db: Session
) -> None:
    link(client, "ada@gmail.test")
    (mailbox,) = mailboxes(db)
    campaign = active_campaign(db, mailbox, "Q4 outreach")
    reauth = client.post(
        f"/mailboxes/{mailbox.id}/reauthenticate",
        data={"csrftoken": csrf_from(client.get("/messaging/settings").text)},
        follow_redirects=False,
    )
    finish_at_provider(client, reauth, "ada@gmail.test")
    db.expire_all()
    assert campaign.pause_reason is PauseReason.MAILBOX_REAUTHENTICATED


def test_declining_a_second_sign_in_keeps_the_linked_google_account_connected(
    client: TestClient, db: Session, services: ProviderServices, sandbox: Sandbox
) -> None:
    link(client, "bob@gmail.test")
    started = start_link(client, "ada@gmail.test")
    response = finish_at_provider(client, started, "bob@gmail.test")
    discard = re.search(r'action="(/mailboxes/link/\d+/discard)"', response.text)
    assert discard
    client.post(discard.group(1), data={"csrftoken": csrf_from(response.text)})
    # Google's revocation would have ended bob's linked grant too; nothing was revoked.
    report = check_connections(client.app.state.session_factory, services)  # type: ignore[attr-defined]
    assert (report.checked, report.failed) == (1, 0)
    (mailbox,) = mailboxes(db)
    assert mailbox.status is MailboxStatus.CONNECTED
    assert "Reauthentication required" not in client.get("/messaging/settings").text


def test_declining_an_unlinked_account_revokes_its_grant(
    client: TestClient, db: Session, sandbox: Sandbox
) -> None:
    started = start_link(client, "ada@gmail.test")
    response = finish_at_provider(client, started, "bob@gmail.test")
    discard = re.search(r'action="(/mailboxes/link/\d+/discard)"', response.text)
    assert discard
    client.post(discard.group(1), data={"csrftoken": csrf_from(response.text)})
    assert sandbox.admin("revoke", {"mailbox": "bob@gmail.test"}) == {"revoked": 0}
