"""A production mode that is hard to get wrong: no sandbox on a public server by accident, its
admin endpoints closed to the network, and no first account for whoever arrives first."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.cli import _setup_token_for
from sendwell.config import ConfigError, load_settings
from tests.conftest import STRONG_PASSWORD, Database, csrf_from, make_settings

ADMIN_TOKEN = "sandbox-admin-" + "k" * 24
STRANGER = ("203.0.113.7", 50000)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SECRET_KEY", "TOKEN_KEYS", "DATABASE_URL", "BASE_URL", "SANDBOX"):
        monkeypatch.delenv(f"SENDWELL_{name}", raising=False)
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def test_the_sandbox_refuses_to_start_on_a_public_https_address(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDWELL_BASE_URL", "https://mail.example.com")
    monkeypatch.setenv("SENDWELL_SANDBOX", "1")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("SENDWELL_SANDBOX: the sandbox emulates")
    assert "SENDWELL_SANDBOX_DEMO=1" in str(refused.value)
    monkeypatch.setenv("SENDWELL_SANDBOX_DEMO", "1")
    assert load_settings().sandbox


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8000", "https://localhost:8443", "http://mail.example.com"]
)
def test_the_sandbox_runs_on_loopback_and_plain_http(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    monkeypatch.setenv("SENDWELL_BASE_URL", base_url)
    monkeypatch.setenv("SENDWELL_SANDBOX", "1")
    assert load_settings().sandbox


def _app(database: Database, engine: Engine, **settings: object) -> TestClient:
    return TestClient(
        create_app(make_settings(database.url, **settings), engine=engine), client=STRANGER
    )


def test_sandbox_admin_endpoints_refuse_other_hosts_without_the_token(
    database: Database, engine: Engine
) -> None:
    with _app(database, engine, sandbox=True, sandbox_admin_token=ADMIN_TOKEN) as client:
        listing = client.get("/sandbox/admin/messages?mailbox=a@gmail.test")
        reply = client.post(
            "/sandbox/admin/reply", json={"mailbox": "a@gmail.test", "to_message_id": "x"}
        )
        wrong = client.get(
            "/sandbox/admin/messages?mailbox=a@gmail.test",
            headers={"Authorization": "Bearer wrong"},
        )
        allowed = client.get(
            "/sandbox/admin/messages?mailbox=a@gmail.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert (listing.status_code, reply.status_code, wrong.status_code) == (403, 403, 403)
    assert "loopback" in listing.json()["detail"]
    assert allowed.status_code == 200
    with _app(database, engine, sandbox=True) as client:
        assert client.get("/sandbox/admin/messages?mailbox=a@gmail.test").status_code == 403


def test_every_page_says_loudly_when_the_sandbox_is_on(database: Database, engine: Engine) -> None:
    with _app(database, engine, sandbox=True) as client:
        assert "Sandbox mode." in client.get("/setup").text
    with _app(database, engine) as client:
        assert "Sandbox mode." not in client.get("/setup").text


def _setup(client: TestClient, token: str | None) -> int:
    page = client.get("/setup")
    form = {"csrftoken": csrf_from(page.text), "email": "ada@example.com"}
    form["password"] = STRONG_PASSWORD
    if token is not None:
        form["setup_token"] = token
    status: int = client.post("/setup", data=form, follow_redirects=False).status_code
    return status


def test_the_first_account_of_a_reachable_server_needs_the_setup_token(
    database: Database, engine: Engine
) -> None:
    settings = make_settings(database.url)
    token = accounts.setup_token(settings.secret_key)
    with TestClient(create_app(settings, engine=engine, setup_token=token)) as client:
        assert "Setup token" in client.get("/setup").text
        assert _setup(client, None) == 422
        assert _setup(client, "not-the-token") == 422
        assert _setup(client, token.upper()) == 303


def test_serve_asks_for_a_setup_token_unless_reached_on_loopback_only(
    database: Database, engine: Engine, db: Session
) -> None:
    local = make_settings(database.url, base_url="http://127.0.0.1:8000")
    public = make_settings(database.url, base_url="https://mail.example.com")
    assert _setup_token_for(local, engine, "127.0.0.1") == ""
    assert _setup_token_for(local, engine, "0.0.0.0") == accounts.setup_token(local.secret_key)  # noqa: S104
    assert _setup_token_for(public, engine, "127.0.0.1") == accounts.setup_token(public.secret_key)
    accounts.create_first_account(db, email="ada@example.com", password=STRONG_PASSWORD)
    db.commit()
    assert _setup_token_for(public, engine, "0.0.0.0") == ""  # noqa: S104 - nothing to protect
