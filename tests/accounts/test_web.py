"""The first-run, sign-in and account pages, driven like a browser through the real app."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sendwell.accounts.service import client_key
from sendwell.app import create_app
from sendwell.models import ApiToken, Role, SignInFailure, User, Workspace
from tests.conftest import (
    STRONG_PASSWORD,
    Database,
    create_first_account,
    csrf_from,
    make_settings,
    post_form,
)


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_first_visit_asks_for_the_first_account(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.url.path == "/setup"
    assert "Create the first account" in response.text
    assert client.get("/sign-in").url.path == "/setup"


def test_first_account_is_the_signed_in_workspace_admin(client: TestClient, db: Session) -> None:
    response = post_form(
        client,
        "/setup",
        "/setup",
        {
            "email": " Ada@Example.COM ",
            "password": STRONG_PASSWORD,
            "name": "Ada Lovelace",
            "workspace_name": "Talent team",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/messaging/campaigns"
    page = client.get("/messaging/campaigns")
    assert page.url.path == "/messaging/campaigns"
    assert "Welcome to Sendwell, Ada Lovelace." in page.text
    user = db.scalars(select(User)).one()
    assert (user.email, user.role) == ("ada@example.com", Role.ADMIN)
    assert db.scalars(select(Workspace)).one().name == "Talent team"


def test_setup_is_closed_once_an_account_exists(client: TestClient, db: Session) -> None:
    create_first_account(client)
    other = TestClient(client.app)
    assert other.get("/setup").url.path == "/sign-in"
    token = csrf_from(other.get("/sign-in").text)
    response = other.post(
        "/setup", data={"csrftoken": token, "email": "eve@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 409
    assert "already exists" in response.text
    assert count(db, User) == 1


def test_weak_password_is_refused_and_nothing_is_saved(client: TestClient, db: Session) -> None:
    response = post_form(
        client, "/setup", "/setup", {"email": "ada@example.com", "password": "short"}
    )
    assert response.status_code == 422
    assert "at least 10 characters" in response.text
    assert 'value="ada@example.com"' in response.text
    assert count(db, User) == 0
    assert count(db, Workspace) == 0


def test_invalid_email_is_refused(client: TestClient, db: Session) -> None:
    response = post_form(
        client, "/setup", "/setup", {"email": "not-an-address", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 422
    assert "That email address is not valid" in response.text
    assert count(db, User) == 0


def test_form_without_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    client.get("/setup")
    response = client.post("/setup", data={"email": "ada@example.com", "password": STRONG_PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert count(db, User) == 0


def test_form_with_a_forged_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    client.get("/setup")
    response = client.post(
        "/setup",
        data={"csrftoken": "forged", "email": "ada@example.com", "password": STRONG_PASSWORD},
    )
    assert response.status_code == 403
    assert count(db, User) == 0


def sign_in(client: TestClient, email: str, password: str, next_path: str = "") -> httpx.Response:
    return post_form(
        client,
        "/sign-in",
        "/sign-in",
        {"email": email, "password": password, "next": next_path},
        follow_redirects=False,
    )


def test_sign_in_and_out(client: TestClient) -> None:
    create_first_account(client)
    client.post("/sign-out", data={"csrftoken": csrf_from(client.get("/account").text)})
    assert client.get("/messaging/settings").url.path == "/sign-in"

    response = sign_in(client, "ADA@example.com", STRONG_PASSWORD)
    assert response.status_code == 303
    settings_page = client.get("/messaging/settings")
    assert "Your connected email accounts" in settings_page.text

    stolen_cookie = client.cookies.get("sendwell_session")
    client.post("/sign-out", data={"csrftoken": csrf_from(settings_page.text)})
    replay = TestClient(client.app, cookies={"sendwell_session": stolen_cookie or ""})
    assert replay.get("/messaging/settings").url.path == "/sign-in"


def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    create_first_account(client)
    client.cookies.clear()
    wrong = sign_in(client, "ada@example.com", "not the password")
    unknown = sign_in(client, "nobody@example.com", STRONG_PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The email or password is incorrect." in response.text
    assert "sendwell_session" not in client.cookies


def test_repeated_failures_lock_that_client_out_of_the_address(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    client.cookies.clear()
    for _ in range(5):
        assert sign_in(client, "ada@example.com", "guess guess guess").status_code == 401
    locked = sign_in(client, "ada@example.com", STRONG_PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.text
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "sendwell_session" not in client.cookies
    assert count(db, SignInFailure) == 5
    # The owner, elsewhere, is not locked out by someone else's guesses.
    with TestClient(client.app, client=("198.51.100.20", 40000)) as owner:
        assert sign_in(owner, "ada@example.com", STRONG_PASSWORD).status_code == 303


def test_each_failure_past_the_limit_doubles_the_wait(client: TestClient, db: Session) -> None:
    create_first_account(client)
    client.cookies.clear()
    for _ in range(5):
        sign_in(client, "ada@example.com", "guess guess guess")
    _age_failures(db, minutes=16)
    assert sign_in(client, "ada@example.com", "guess guess guess").status_code == 401
    locked = sign_in(client, "ada@example.com", STRONG_PASSWORD)
    assert locked.status_code == 429
    assert 15 * 60 < int(locked.headers["retry-after"]) <= 30 * 60


def _age_failures(db: Session, *, minutes: int) -> None:
    for failure in db.scalars(select(SignInFailure)).all():
        failure.at -= timedelta(minutes=minutes)
    db.commit()


def test_lockout_lifts_after_the_window(client: TestClient, db: Session) -> None:
    create_first_account(client)
    client.cookies.clear()
    for _ in range(5):
        sign_in(client, "ada@example.com", "guess guess guess")
    _age_failures(db, minutes=16)
    assert sign_in(client, "ada@example.com", STRONG_PASSWORD).status_code == 303


@pytest.mark.parametrize("password", ["1234567890", "password123", "qwertyuiop", "letmein1234"])
def test_common_passwords_are_refused(client: TestClient, password: str) -> None:
    page = client.get("/setup")
    response = client.post(
        "/setup",
        data={"csrftoken": csrf_from(page.text), "email": "ada@example.com", "password": password},
    )
    assert response.status_code == 422
    assert "a common password or close to one" in response.text


def test_pages_need_a_session_and_return_to_where_the_user_was(client: TestClient) -> None:
    create_first_account(client)
    client.cookies.clear()
    response = client.get("/messaging/settings", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/messaging/settings"
    signed_in = sign_in(client, "ada@example.com", STRONG_PASSWORD, "/messaging/settings")
    assert signed_in.headers["location"] == "/messaging/settings"


def test_sign_in_never_redirects_off_site(client: TestClient) -> None:
    create_first_account(client)
    client.cookies.clear()
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = sign_in(client, "ada@example.com", STRONG_PASSWORD, target)
        assert response.headers["location"] == "/messaging/campaigns"
        client.cookies.delete("sendwell_session")


def test_session_cookie_flags(client: TestClient) -> None:
    response = post_form(
        client,
        "/setup",
        "/setup",
        {"email": "ada@example.com", "password": STRONG_PASSWORD},
        follow_redirects=False,
    )
    cookie = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith("sendwell_session=")
    )
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie


def test_session_cookie_is_secure_behind_https(database: Database, engine: Engine) -> None:
    settings = make_settings(database.url, base_url="https://mail.example.com")
    with TestClient(
        create_app(settings, engine=engine),
        base_url="https://mail.example.com",
    ) as client:
        response = post_form(
            client,
            "/setup",
            "/setup",
            {"email": "ada@example.com", "password": STRONG_PASSWORD},
            follow_redirects=False,
        )
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(value for value in cookies if value.startswith("sendwell_session="))
    assert "Secure" in session_cookie


def test_api_token_is_shown_once_and_can_be_revoked(client: TestClient, db: Session) -> None:
    create_first_account(client)
    created = post_form(client, "/account", "/account/tokens", {"name": "CRM sync"})
    assert created.status_code == 201
    token = re.search(r'value="(sw_[^"]+)"', created.text)
    assert token
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code
        == 200
    )
    listing = client.get("/account").text
    assert "CRM sync" in listing
    assert token.group(1) not in listing
    assert token.group(1)[-4:] in listing

    token_id = db.scalars(select(ApiToken.id)).one()
    revoked = post_form(client, "/account", f"/account/tokens/{token_id}/revoke", {})
    assert "The API token was revoked." in revoked.text
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code
        == 401
    )


def test_token_without_a_name_is_refused(client: TestClient, db: Session) -> None:
    create_first_account(client)
    response = post_form(client, "/account", "/account/tokens", {"name": "   "})
    assert response.status_code == 422
    assert "Give the token a name" in response.text
    assert count(db, ApiToken) == 0


def test_unknown_page_is_a_helpful_404(client: TestClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_an_ipv6_client_counts_by_its_64_block() -> None:
    """A new address in the same /64 is no new client for sign-in failures."""
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("203.0.113.7") == "203.0.113.7"
