"""Fixtures: a migrated database per backend (SQLite and PostgreSQL), the app, and helpers."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

from sendwell import migrate, wiring
from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.db import make_engine, make_session_factory
from sendwell.kit.outbound import OutboundPolicy
from sendwell.models import Base
from tests.sandbox_support import Sandbox, running_sandbox
from tests.security import log_watch

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "SENDWELL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STRONG_PASSWORD = "correct horse battery staple"
# The test mail servers (aiosmtpd) log every command from their own threads, which outlive a
# test's captured output; their chatter says nothing the tests do not check.
logging.getLogger("mail.log").setLevel(logging.WARNING)


# Every feature's event subscriptions, as the app and the CLI make them, before any test runs
# a service directly.
wiring.register()


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine


def _postgres_database(name: str) -> str:
    """Create a fresh, empty PostgreSQL database for this test run and return its URL."""
    admin = make_url(PG_ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        message = f"PostgreSQL at {admin.host}:{admin.port} is not reachable: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message + " (set SENDWELL_TEST_POSTGRES_URL to run these tests)")
    return admin.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(name: str) -> None:
    conninfo = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    with psycopg.connect(
        conninfo.render_as_string(hide_password=False), autocommit=True
    ) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[Database]:
    """One migrated database per backend for the whole run (migrations run through Alembic)."""
    backend = request.param
    pg_name = f"sendwell_test_{worker_id}_{os.getpid()}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sendwell.db'}"
    else:
        url = _postgres_database(pg_name)
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield Database(backend, url, engine)
    engine.dispose()
    if backend == "postgresql":
        _drop_postgres_database(pg_name)


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:
    """The migrated engine, emptied after each test so every test starts clean."""
    yield database.engine
    tables = list(reversed(Base.metadata.sorted_tables))
    with database.engine.begin() as connection:
        if database.backend == "postgresql":
            names = ", ".join(table.name for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session for arranging and checking data; the test decides when to commit."""
    session = make_session_factory(engine)()
    yield session
    session.rollback()
    session.close()


# The test mail servers and webhook receivers listen on loopback: tests allow it the way an
# administrator allows a company mail server (SENDWELL_OUTBOUND_ALLOW).
LOOPBACK_ALLOWED = "127.0.0.0/8,::1"
LOOPBACK = OutboundPolicy.parse(LOOPBACK_ALLOWED)
PUBLIC_ONLY = OutboundPolicy()


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "token_keys": Fernet.generate_key().decode(),
        "base_url": "http://testserver",
        # Exchange's 30 messages a minute is kept by its own test; elsewhere it would only
        # make the tests slow.
        "microsoft_min_send_seconds": 0,
        "outbound_allow": LOOPBACK_ALLOWED,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(database.url)


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as test_client:
        yield test_client


CSRF_FIELD = re.compile(r'name="csrftoken" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def post_form(
    client: TestClient, page: str, action: str, data: dict[str, str], **kwargs: Any
) -> httpx.Response:
    """Load a page like a browser, then submit one of its forms with the page's CSRF token."""
    token = csrf_from(client.get(page).text)
    response: httpx.Response = client.post(action, data={"csrftoken": token, **data}, **kwargs)
    return response


def create_first_account(
    client: TestClient, email: str = "ada@example.com", password: str = STRONG_PASSWORD
) -> None:
    response = post_form(
        client,
        "/setup",
        "/setup",
        {"email": email, "password": password, "name": "Ada Lovelace"},
        follow_redirects=False,
    )
    assert response.status_code == 303


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The sandbox over real HTTP, emptied before each test; its Gmail bodies match the schema."""
    sandbox_server.state.reset()
    sandbox_server.state.timeout_seconds = 30.0
    sandbox_server.schema_problems.clear()
    sandbox_server.requests.clear()
    yield sandbox_server
    assert not sandbox_server.schema_problems, (
        "Gmail bodies unlike Google's discovery document:\n"
        + "\n".join(sandbox_server.schema_problems)
    )


@pytest.fixture(scope="session", autouse=True)
def logs_rendered_and_watched() -> Iterator[None]:
    """Every log line of the run is rendered as in production, at DEBUG, and kept to check."""
    log_watch.install()
    yield
    leaks = log_watch.check(log_watch.WATCH.take(), [], [STRONG_PASSWORD])
    assert not leaks, "Secrets in the logs after the last test:\n" + "\n".join(leaks)


@pytest.fixture(autouse=True)
def no_secret_in_the_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, its log lines hold none of the secrets it used (see log_watch)."""
    log_watch.ensure_installed()
    yield
    fixtures = list(request.node.funcargs.values())
    leaks = log_watch.check(log_watch.WATCH.take(), fixtures, [STRONG_PASSWORD])
    assert not leaks, "Secrets in this test's logs:\n" + "\n".join(leaks)
