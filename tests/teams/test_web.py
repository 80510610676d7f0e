"""The Team page: invitations with one-time links, roles, deactivation and reassignment, and
everyone's own name and password."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import recipients
from sendwell.campaigns import service as campaigns
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.models import (
    ApiToken,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Invitation,
    Mailbox,
    PauseReason,
    Role,
    User,
    UserSession,
)
from tests.conftest import STRONG_PASSWORD, create_first_account, post_form
from tests.mailboxes.conftest import link
from tests.teams.conftest import (
    Inbox,
    accept,
    form_token,
    invite,
    join,
    sign_in,
    text,
    user_id,
)

NEW_PASSWORD = "a different long passphrase"


def active_campaign(client: TestClient, owner_email: str, mailbox_email: str, name: str) -> int:
    """A started campaign with one recipient, made through the services as its owner would."""
    with session_scope(client.app.state.session_factory) as db:  # type: ignore[attr-defined]
        owner = db.scalars(select(User).where(User.email == owner_email)).one()
        mailbox_id = db.scalars(select(Mailbox.id).where(Mailbox.email == mailbox_email)).one()
        campaign = campaigns.create_campaign(
            db,
            owner,
            name=name,
            mailbox_id=mailbox_id,
            steps=[campaigns.StepIn("Hello {{ first_name }}", "Hi {{ first_name }}")],
            start_delay_minutes=600,
        )
        recipients.add_recipients(
            db, owner, campaign.id, [recipients.RecipientIn("zed@example.com", first_name="Zed")]
        )
        campaigns.start(db, owner, campaign.id)
        return campaign.id


def test_an_invitation_link_makes_one_account_once(admin: TestClient, db: Session) -> None:
    link_path = invite(admin, "Grace@Example.com")
    team = text(admin.get("/team"))
    assert "Waiting invitations" in team
    assert "grace@example.com" in team
    # The link is stored only as a hash.
    stored = db.scalars(select(Invitation)).one()
    assert link_path.rsplit("/", 1)[1] not in stored.token_hash

    page = TestClient(admin.app).get(link_path)
    assert page.status_code == 200
    assert "You are invited as a member, with the email grace@example.com." in text(page)
    grace = accept(admin.app, link_path, "Grace Hopper")
    assert "Grace Hopper" in text(grace.get("/messaging/settings"))
    assert user_id(db, "grace@example.com")
    assert (
        db.scalars(select(User.role).where(User.email == "grace@example.com")).one() is Role.MEMBER
    )

    again = TestClient(admin.app).get(link_path)
    assert again.status_code == 409
    assert "This invitation was already used." in text(again)
    team = text(admin.get("/team"))
    assert "Waiting invitations" not in team
    assert "Grace Hopper" in team


def test_a_weak_password_keeps_the_invitation_open(admin: TestClient) -> None:
    link_path = invite(admin, "grace@example.com")
    browser = TestClient(admin.app)
    refused = post_form(browser, link_path, link_path, {"name": "Grace", "password": "short"})
    assert refused.status_code == 422
    assert "Choose a password of at least 10 characters." in text(refused)
    accept(admin.app, link_path, "Grace")


def test_a_new_invitation_replaces_the_old_link_and_links_expire(
    admin: TestClient, db: Session
) -> None:
    first = invite(admin, "grace@example.com")
    second = invite(admin, "grace@example.com")
    replaced = TestClient(admin.app).get(first)
    assert replaced.status_code == 409
    assert "expired or was replaced by a newer one" in text(replaced)
    db.execute(
        Invitation.__table__.update().values(expires_at=utcnow() - timedelta(minutes=1))  # type: ignore[attr-defined]
    )
    db.commit()
    expired = TestClient(admin.app).get(second)
    assert expired.status_code == 409
    assert "Ask your workspace admin for a new link." in text(expired)
    assert TestClient(admin.app).get("/invitations/not-a-link").status_code == 404


def test_an_invitation_can_be_cancelled_and_an_existing_user_is_not_invited(
    admin: TestClient, db: Session
) -> None:
    link_path = invite(admin, "grace@example.com")
    invitation_id = db.scalars(select(Invitation.id)).one()
    cancelled = post_form(admin, "/team", f"/team/invitations/{invitation_id}/cancel", {})
    assert "The invitation for grace@example.com is cancelled; its link is dead." in text(cancelled)
    assert TestClient(admin.app).get(link_path).status_code == 409
    refused = post_form(admin, "/team", "/team/invitations", {"email": "ada@example.com"})
    assert refused.status_code == 409
    assert "ada@example.com already has a Sendwell account." in text(refused)


def test_the_invitation_is_emailed_when_the_server_has_mail(
    settings: Settings, engine: object, smtp: tuple[Inbox, int]
) -> None:
    from sendwell.app import create_app

    inbox, port = smtp
    with_mail = settings.model_copy(
        update={"smtp_url": f"smtp://127.0.0.1:{port}?from=sendwell@example.com"}
    )
    with TestClient(create_app(with_mail, engine=engine)) as admin:  # type: ignore[arg-type]
        create_first_account(admin)
        sent = post_form(admin, "/team", "/team/invitations", {"email": "grace@example.com"})
        assert "An invitation was emailed to grace@example.com." in text(sent)
        assert "testserver/invitations/" not in sent.text  # the link goes to its owner only
        (mail,) = inbox.messages
        assert mail["To"] == "grace@example.com"
        assert mail["Subject"] == "Ada Lovelace invites you to Sendwell"
        body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        link_path = body.split("http://testserver", 1)[1].split()[0]
        accept(admin.app, link_path, "Grace Hopper")


def test_members_do_not_manage_the_team(admin: TestClient, db: Session) -> None:
    grace = join(admin, "grace@example.com", "Grace")
    assert 'href="/team"' not in grace.get("/messaging/campaigns").text
    assert 'href="/team"' in admin.get("/messaging/campaigns").text
    for path in ("/team", f"/team/users/{user_id(db, 'ada@example.com')}"):
        refused = grace.get(path)
        assert refused.status_code == 403
        assert "Only workspace admins manage the team." in text(refused)
    token = form_token(grace)
    attempt = grace.post("/team/invitations", data={"csrftoken": token, "email": "x@example.com"})
    assert attempt.status_code == 403
    assert db.scalars(select(Invitation.email)).all() == ["grace@example.com"]


def test_roles_change_but_the_workspace_keeps_an_admin(admin: TestClient, db: Session) -> None:
    join(admin, "grace@example.com", "Grace")
    grace_id, ada_id = user_id(db, "grace@example.com"), user_id(db, "ada@example.com")
    refused = post_form(admin, "/team", f"/team/users/{ada_id}/role", {"role": "member"})
    assert refused.status_code == 409
    assert "The workspace needs at least one admin" in text(refused)
    made = post_form(admin, "/team", f"/team/users/{grace_id}/role", {"role": "admin"})
    assert "Grace is now admin." in text(made)
    demoted = post_form(admin, "/team", f"/team/users/{ada_id}/role", {"role": "member"})
    assert "Ada Lovelace is now member." in text(demoted)
    assert admin.get("/team").status_code == 403


def test_deactivating_signs_out_revokes_tokens_pauses_campaigns_and_keeps_history(
    admin: TestClient, db: Session
) -> None:
    grace = join(admin, "grace@example.com", "Grace")
    assert link(grace, "grace@gmail.test").status_code == 303
    campaign_id = active_campaign(admin, "grace@example.com", "grace@gmail.test", "Grace's hiring")
    token = post_form(grace, "/account", "/account/tokens", {"name": "script"})
    assert token.status_code == 201
    grace_id = user_id(db, "grace@example.com")

    done = post_form(admin, f"/team/users/{grace_id}", f"/team/users/{grace_id}/deactivate", {})
    page = text(done)
    assert (
        "Grace is deactivated: they are signed out everywhere, their API tokens are revoked, "
        "and 1 campaign paused. Their history is kept."
    ) in page
    assert "Deactivated on" in page
    assert "Paused because its owner was deactivated." in page

    assert grace.get("/messaging/settings", follow_redirects=False).status_code == 303
    refused = sign_in(admin.app, "grace@example.com")
    assert refused.status_code == 401
    assert "This account was deactivated by a workspace admin." in text(refused)
    wrong = sign_in(admin.app, "grace@example.com", "not the password")
    assert "The email or password is incorrect." in text(wrong)
    db.expire_all()
    assert db.scalars(select(UserSession).where(UserSession.user_id == grace_id)).all() == []
    assert db.scalars(select(ApiToken).where(ApiToken.user_id == grace_id)).all() == []
    campaign = db.get(Campaign, campaign_id)
    assert campaign is not None
    assert campaign.status is CampaignStatus.PAUSED
    assert campaign.pause_reason is PauseReason.OWNER_DEACTIVATED
    kinds = db.scalars(
        select(CampaignEvent.kind)
        .where(CampaignEvent.campaign_id == campaign_id)
        .order_by(CampaignEvent.id)
    ).all()
    assert kinds == ["created", "recipients_added", "started", "paused"]


def test_an_admin_reassigns_a_deactivated_users_campaign_which_then_resumes(
    admin: TestClient, db: Session
) -> None:
    grace = join(admin, "grace@example.com", "Grace")
    assert link(grace, "grace@gmail.test").status_code == 303
    assert link(admin, "ada@gmail.test").status_code == 303
    campaign_id = active_campaign(admin, "grace@example.com", "grace@gmail.test", "Handover")
    grace_id, ada_id = user_id(db, "grace@example.com"), user_id(db, "ada@example.com")
    member_page = f"/team/users/{grace_id}"
    post_form(admin, member_page, f"{member_page}/deactivate", {})

    # The campaign's owner is gone: resuming is refused until it is reassigned.
    refused = post_form(admin, "/messaging/campaigns", f"/campaigns/{campaign_id}/resume", {})
    assert "Grace was deactivated. An admin can reassign the campaign" in text(refused)

    ada_mailbox = db.scalars(select(Mailbox.id).where(Mailbox.email == "ada@gmail.test")).one()
    moved = post_form(
        admin,
        member_page,
        f"/team/campaigns/{campaign_id}/reassign",
        {"owner_id": str(ada_id), "mailbox_id": str(ada_mailbox)},
    )
    assert "“Handover” is reassigned." in text(moved)
    db.expire_all()
    campaign = db.get(Campaign, campaign_id)
    assert campaign is not None
    assert (campaign.owner_id, campaign.mailbox_id) == (ada_id, ada_mailbox)
    assert campaign.status is CampaignStatus.PAUSED
    resumed = post_form(
        admin, "/messaging/campaigns", f"/campaigns/{campaign_id}/resume", {"confirmed": "1"}
    )
    assert "“Handover” is active again and resumes from where it left off." in text(resumed)
    history = text(admin.get(f"/campaigns/{campaign_id}"))
    assert "Reassigned from Grace to Ada Lovelace, sending from ada@gmail.test." in history


def test_a_campaign_goes_only_to_someone_who_may_send_from_the_account(
    admin: TestClient, db: Session
) -> None:
    join(admin, "grace@example.com", "Grace")
    join(admin, "alan@example.com", "Alan")
    assert link(admin, "ada@gmail.test").status_code == 303
    campaign_id = active_campaign(admin, "ada@example.com", "ada@gmail.test", "Ada's own")
    post_form(admin, "/messaging/campaigns", f"/campaigns/{campaign_id}/pause", {})
    alan_id = user_id(db, "alan@example.com")
    mailbox_id = db.scalars(select(Mailbox.id).where(Mailbox.email == "ada@gmail.test")).one()
    refused = post_form(
        admin,
        "/team",
        f"/team/campaigns/{campaign_id}/reassign",
        {"owner_id": str(alan_id), "mailbox_id": str(mailbox_id)},
    )
    assert "Choose an email account Alan may send from" in text(refused)
    db.expire_all()
    assert db.get(Campaign, campaign_id).owner_id == user_id(db, "ada@example.com")  # type: ignore[union-attr]


def test_everyone_changes_their_own_name_and_password(admin: TestClient, db: Session) -> None:
    grace = join(admin, "grace@example.com", "Grace")
    other_browser = TestClient(admin.app)
    assert (
        post_form(
            other_browser,
            "/sign-in",
            "/sign-in",
            {"email": "grace@example.com", "password": STRONG_PASSWORD},
        ).status_code
        == 200
    )
    token = post_form(grace, "/account", "/account/tokens", {"name": "script"})
    assert token.status_code == 201

    renamed = post_form(grace, "/account", "/account/profile", {"name": "  Grace   Hopper "})
    assert "Your name is saved." in text(renamed)
    assert (
        db.scalars(select(User.name).where(User.email == "grace@example.com")).one()
        == "Grace Hopper"
    )

    wrong = post_form(
        grace,
        "/account",
        "/account/password",
        {"current_password": "not it", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert "Your current password is not correct." in text(wrong)
    weak = post_form(
        grace,
        "/account",
        "/account/password",
        {"current_password": STRONG_PASSWORD, "new_password": "password1234"},
    )
    assert weak.status_code == 422
    assert "harder to guess" in text(weak)

    changed = post_form(
        grace,
        "/account",
        "/account/password",
        {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert "Your password is changed. Every other browser was signed out." in text(changed)
    assert grace.get("/account").status_code == 200  # this browser stays signed in
    assert other_browser.get("/account", follow_redirects=False).status_code == 303
    assert sign_in(admin.app, "grace@example.com").status_code == 401
    assert sign_in(admin.app, "grace@example.com", NEW_PASSWORD).status_code == 303
    db.expire_all()
    grace_id = user_id(db, "grace@example.com")
    assert len(db.scalars(select(ApiToken).where(ApiToken.user_id == grace_id)).all()) == 1
