"""The team API: users (admins), invitations, names and roles, deactivation, reassignment, and
everyone's own password."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.models import Campaign, CampaignStatus, Mailbox, PauseReason
from tests.conftest import STRONG_PASSWORD, post_form
from tests.mailboxes.conftest import link
from tests.teams.conftest import accept, join, sign_in, user_id
from tests.teams.test_web import active_campaign

NEW_TOKEN = re.compile(r'value="(sw_[^"]+)" aria-label="New API token"')


def token_of(client: TestClient) -> dict[str, str]:
    """The Account page's "Create token": a bearer header for the API."""
    made = post_form(client, "/account", "/account/tokens", {"name": "script"})
    assert made.status_code == 201
    found = NEW_TOKEN.search(made.text)
    assert found, made.text
    return {"Authorization": f"Bearer {found.group(1)}"}


def api(
    client: TestClient, method: str, path: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    response: httpx.Response = client.request(
        method, f"/api/v1{path}", headers=headers, json=body or None
    )
    return response


def test_admins_list_and_invite_and_members_cannot(admin: TestClient) -> None:
    ada = token_of(admin)
    invited = api(admin, "POST", "/users", ada, email="grace@example.com", role="member")
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["email"] == "grace@example.com"
    assert body["emailed"] is False
    assert body["invite_url"].startswith("http://testserver/invitations/")
    accept(admin.app, body["invite_url"].removeprefix("http://testserver"), "Grace")

    users = api(admin, "GET", "/users", ada).json()
    assert [(u["email"], u["role"], u["active"]) for u in users] == [
        ("ada@example.com", "admin", True),
        ("grace@example.com", "member", True),
    ]
    grace = token_of(TestClient(admin.app, cookies=sign_in_cookies(admin, "grace@example.com")))
    for method, path, body in (
        ("GET", "/users", {}),
        ("POST", "/users", {"email": "eve@example.com"}),
        ("POST", f"/users/{users[0]['id']}/deactivate", {}),
    ):
        refused = api(admin, method, path, grace, **body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "admins_only"


def sign_in_cookies(admin: TestClient, email: str) -> httpx.Cookies:
    response = sign_in(admin.app, email)
    assert response.status_code == 303
    return response.cookies


def test_names_roles_and_the_last_admin(admin: TestClient, db: Session) -> None:
    ada = token_of(admin)
    grace_browser = join(admin, "grace@example.com", "Grace")
    grace = token_of(grace_browser)
    grace_id, ada_id = user_id(db, "grace@example.com"), user_id(db, "ada@example.com")

    renamed = api(admin, "PATCH", f"/users/{grace_id}", grace, name="Grace Hopper")
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Grace Hopper"
    assert api(admin, "PATCH", f"/users/{grace_id}", grace, role="admin").status_code == 403
    assert api(admin, "PATCH", f"/users/{ada_id}", grace, name="Taken").status_code == 404
    last = api(admin, "PATCH", f"/users/{ada_id}", ada, role="member")
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_admin"
    promoted = api(admin, "PATCH", f"/users/{grace_id}", ada, role="admin")
    assert promoted.json()["role"] == "admin"
    bad = api(admin, "PATCH", f"/users/{grace_id}", ada, role="owner")
    assert bad.status_code == 422


def test_deactivate_through_the_api(admin: TestClient, db: Session) -> None:
    ada = token_of(admin)
    grace_browser = join(admin, "grace@example.com", "Grace")
    grace = token_of(grace_browser)
    assert link(grace_browser, "grace@gmail.test").status_code == 303
    campaign_id = active_campaign(admin, "grace@example.com", "grace@gmail.test", "Q3")
    grace_id = user_id(db, "grace@example.com")

    assert (
        api(admin, "POST", f"/users/{user_id(db, 'ada@example.com')}/deactivate", ada).status_code
        == 409
    )
    done = api(admin, "POST", f"/users/{grace_id}/deactivate", ada)
    assert done.status_code == 200, done.text
    assert done.json()["user"]["active"] is False
    assert done.json()["paused_campaigns"] == [campaign_id]
    assert api(admin, "GET", "/me", grace).status_code == 401
    db.expire_all()
    campaign = db.get(Campaign, campaign_id)
    assert campaign is not None
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.OWNER_DEACTIVATED,
    )

    graces = db.scalars(select(Mailbox.id).where(Mailbox.email == "grace@gmail.test")).one()
    ada_id = user_id(db, "ada@example.com")
    # Seeing every account, as an admin does, is not sending as its owner.
    as_grace = api(
        admin, "POST", f"/campaigns/{campaign_id}/reassign", ada, owner_id=ada_id, mailbox_id=graces
    )
    assert as_grace.status_code == 422
    assert link(admin, "ada@gmail.test").status_code == 303
    adas = db.scalars(select(Mailbox.id).where(Mailbox.email == "ada@gmail.test")).one()
    moved = api(
        admin, "POST", f"/campaigns/{campaign_id}/reassign", ada, owner_id=ada_id, mailbox_id=adas
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_id"] == ada_id
    assert api(admin, "POST", f"/campaigns/{campaign_id}/resume", ada).json()["status"] == "active"


def test_everyone_changes_their_own_password_through_the_api(admin: TestClient) -> None:
    grace_browser = join(admin, "grace@example.com", "Grace")
    grace = token_of(grace_browser)
    wrong = api(
        admin, "POST", "/me/password", grace, current_password="nope", new_password="x" * 12
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "wrong_password"
    changed = api(
        admin,
        "POST",
        "/me/password",
        grace,
        current_password=STRONG_PASSWORD,
        new_password="a different long passphrase",
    )
    assert changed.status_code == 204
    assert grace_browser.get("/account", follow_redirects=False).status_code == 303
    assert api(admin, "GET", "/me", grace).status_code == 200
    assert sign_in(admin.app, "grace@example.com", "a different long passphrase").status_code == 303
    revoked = api(
        admin,
        "POST",
        "/me/password",
        grace,
        current_password="a different long passphrase",
        new_password="yet another long passphrase",
        revoke_tokens=True,
    )
    assert revoked.status_code == 204
    assert api(admin, "GET", "/me", grace).status_code == 401
