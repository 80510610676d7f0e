"""/api/v1/mailboxes through the app with an API token, against the sandbox over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.accounts.service import create_api_token, create_user
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import LinkAttempt, Mailbox, MailboxStatus, Role, User
from tests.conftest import STRONG_PASSWORD, csrf_from, post_form
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

API = "/api/v1/mailboxes"
MAILBOX_FIELDS = {
    "id",
    "email",
    "provider",
    "status",
    "status_reason",
    "status_code",
    "status_changed_at",
    "owner_id",
    "display_name",
    "signature",
    "daily_cap",
    "min_gap_seconds",
    "expected_expiry",
    "created_at",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_token(db: Session, email: str) -> str:
    user = db.scalars(select(User).where(User.email == email)).one()
    _token, plaintext = create_api_token(db, user, "t")
    db.commit()
    return plaintext


@pytest.fixture
def admin(client: TestClient, db: Session) -> dict[str, str]:
    """Headers for ada@example.com, the workspace admin the client is signed in as."""
    return bearer(api_token(db, "ada@example.com"))


def mailbox_by_email(db: Session, email: str) -> Mailbox:
    db.expire_all()
    return db.scalars(select(Mailbox).where(Mailbox.email == email)).one()


def linked(client: TestClient, db: Session, email: str) -> Mailbox:
    response = link(client, email)
    assert response.headers["location"] == "/messaging/settings", response.text
    return mailbox_by_email(db, email)


def by_email(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["email"]: item for item in items}


def test_list_and_read_mailboxes(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    admin: dict[str, str],
) -> None:
    google = linked(client, db, "ada@gmail.test")
    revoked = linked(client, db, "bob@gmail.test")
    removed = linked(client, db, "ada@contoso.outlook.test")
    client.post(
        f"/mailboxes/{removed.id}/disconnect",
        data={"csrftoken": csrf_from(client.get(f"/mailboxes/{removed.id}").text)},
    )
    sandbox.admin("revoke", {"mailbox": "bob@gmail.test"})
    check_connections(client.app.state.session_factory, services)  # type: ignore[attr-defined]

    response = client.get(API, headers=admin)

    assert response.status_code == 200
    items = response.json()
    assert all(set(item) == MAILBOX_FIELDS for item in items)
    listed = by_email(items)
    assert {email: (m["id"], m["provider"], m["status"]) for email, m in listed.items()} == {
        "ada@gmail.test": (google.id, "google", "connected"),
        "bob@gmail.test": (revoked.id, "google", "reauth_required"),
        "ada@contoso.outlook.test": (removed.id, "microsoft", "disconnected"),
    }
    assert listed["bob@gmail.test"]["status_reason"]
    assert listed["bob@gmail.test"]["status_code"]
    assert listed["ada@gmail.test"]["status_reason"] == ""
    with sandbox.state.lock:
        issued = [token.value for token in sandbox.state.tokens.values()]
    assert not [token for token in issued if token in response.text]

    one = client.get(f"{API}/{google.id}", headers=admin)
    assert one.status_code == 200
    assert one.json() == listed["ada@gmail.test"]


def test_unknown_mailbox_is_a_404_json_error(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/999999", headers=admin)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_mailbox"
    assert response.json()["error"]["message"] == "No such email account."


def test_settings_are_validated_and_saved(
    client: TestClient, db: Session, admin: dict[str, str]
) -> None:
    mailbox = linked(client, db, "ada@gmail.test")
    url = f"{API}/{mailbox.id}"

    zero = client.patch(url, json={"daily_cap": 0}, headers=admin)
    assert zero.status_code == 422
    error = zero.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("daily_cap:")
    assert [problem["field"] for problem in error["details"]] == ["daily_cap"]

    unknown = client.patch(url, json={"daily_cap": 5, "colour": "red"}, headers=admin)
    assert unknown.status_code == 422
    assert "colour" in unknown.json()["error"]["message"]

    two_lines = client.patch(url, json={"display_name": "Ada\r\nBcc: x@example.com"}, headers=admin)
    assert two_lines.status_code == 422
    assert two_lines.json()["error"]["code"] == "invalid_display_name"

    assert client.get(url, headers=admin).json()["daily_cap"] == 1000
    assert mailbox_by_email(db, "ada@gmail.test").daily_cap == 1000

    good = client.patch(
        url,
        json={"daily_cap": 250, "min_gap_seconds": 90, "display_name": "Ada L.", "signature": "A"},
        headers=admin,
    )
    assert good.status_code == 200
    expected = {"daily_cap": 250, "min_gap_seconds": 90, "display_name": "Ada L.", "signature": "A"}
    assert {key: good.json()[key] for key in expected} == expected
    shown = client.get(url, headers=admin).json()
    assert {key: shown[key] for key in expected} == expected


def test_delete_disconnects_and_wipes_tokens(
    client: TestClient, db: Session, sandbox: Sandbox, admin: dict[str, str]
) -> None:
    mailbox = linked(client, db, "ada@gmail.test")

    response = client.delete(f"{API}/{mailbox.id}", headers=admin)

    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    after = mailbox_by_email(db, "ada@gmail.test")
    assert after.status is MailboxStatus.DISCONNECTED
    assert (after.access_token, after.refresh_token, after.token_expires_at) == (None, None, None)
    assert client.get(f"{API}/{mailbox.id}", headers=admin).json()["status"] == "disconnected"
    refresh = sandbox.state.issued_refresh_tokens[-1]
    assert sandbox.state.live_token(refresh, "refresh") is None


def test_start_a_link(
    client: TestClient, db: Session, sandbox: Sandbox, admin: dict[str, str]
) -> None:
    response = client.post(f"{API}/link", json={"email": "ada@gmail.test"}, headers=admin)

    assert response.status_code == 201
    body = response.json()
    assert body["provider"] == "google"
    assert body["authorize_url"].startswith(f"{sandbox.url}/google/o/oauth2/v2/auth?")
    assert "login_hint=ada%40gmail.test" in body["authorize_url"]
    attempt = db.scalars(select(LinkAttempt)).one()
    assert (attempt.provider, attempt.typed_email, attempt.used_at) == (
        "google",
        "ada@gmail.test",
        None,
    )

    microsoft = client.post(
        f"{API}/link", json={"email": "ada@contoso.outlook.test"}, headers=admin
    )
    assert microsoft.status_code == 201
    assert microsoft.json()["provider"] == "microsoft"
    assert microsoft.json()["authorize_url"].startswith(f"{sandbox.url}/microsoft/")


def test_link_asks_for_the_provider_when_it_cannot_be_found(
    client: TestClient, db: Session, admin: dict[str, str]
) -> None:
    unknown = client.post(f"{API}/link", json={"email": "ada@corp.test"}, headers=admin)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "provider_unknown"
    assert '"provider"' in unknown.json()["error"]["message"]
    assert db.scalar(select(func.count()).select_from(LinkAttempt)) == 0

    chosen = client.post(
        f"{API}/link", json={"email": "ada@corp.test", "provider": "google"}, headers=admin
    )
    assert chosen.status_code == 201
    assert chosen.json()["provider"] == "google"
    assert db.scalars(select(LinkAttempt)).one().typed_email == "ada@corp.test"

    wrong = client.post(
        f"{API}/link", json={"email": "ada@corp.test", "provider": "yahoo"}, headers=admin
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "unknown_provider"


def test_members_see_and_change_only_their_own_mailboxes(
    client: TestClient, db: Session, admin: dict[str, str]
) -> None:
    create_user(db, email="bob@example.com", password=STRONG_PASSWORD, role=Role.MEMBER)
    db.commit()
    member_headers = bearer(api_token(db, "bob@example.com"))
    member_browser = TestClient(client.app)
    post_form(
        member_browser,
        "/sign-in",
        "/sign-in",
        {"email": "bob@example.com", "password": STRONG_PASSWORD},
    )
    members = linked(member_browser, db, "bob@gmail.test")
    admins = linked(client, db, "ada@gmail.test")

    own = client.get(API, headers=member_headers).json()
    assert [m["email"] for m in own] == ["bob@gmail.test"]
    assert own[0]["owner_id"] == members.owner_id != admins.owner_id

    url = f"{API}/{admins.id}"
    assert client.get(url, headers=member_headers).status_code == 404
    patched = client.patch(url, json={"daily_cap": 5}, headers=member_headers)
    assert patched.status_code == 404
    assert patched.json()["error"]["code"] == "unknown_mailbox"
    assert client.delete(url, headers=member_headers).status_code == 404
    untouched = mailbox_by_email(db, "ada@gmail.test")
    assert untouched.status is MailboxStatus.CONNECTED
    assert untouched.daily_cap == 1000
    assert untouched.access_token is not None
    assert untouched.refresh_token is not None

    everything = client.get(API, headers=admin).json()
    assert sorted(m["email"] for m in everything) == ["ada@gmail.test", "bob@gmail.test"]
    assert client.get(f"{API}/{members.id}", headers=admin).status_code == 200


def test_without_a_token_is_a_401_json_error(client: TestClient, db: Session) -> None:
    linked(client, db, "ada@gmail.test")
    for method, path in (("GET", API), ("GET", f"{API}/1"), ("POST", f"{API}/link")):
        response = client.request(method, path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "missing_token"
