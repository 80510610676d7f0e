"""`serve`, `worker` and `db upgrade` started while PostgreSQL is away: they wait for it (a
restart, a server still starting), up to SENDWELL_DATABASE_WAIT_SECONDS, and then start, or stop
with one clear line; a setting that waiting cannot mend stops them at once."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from sendwell import db, migrate
from sendwell.db import make_engine
from tests.conftest import PG_ADMIN_URL, _drop_postgres_database, _postgres_database
from tests.sandbox_support import free_port
from tests.tcp_forward import Forwarder
from tests.test_cli import _serve, _until_up, run


@pytest.fixture
def pg_name() -> Iterator[str]:
    """A fresh PostgreSQL database at the latest revision, reached only through `Forwarder`."""
    name = f"sendwell_wait_{uuid.uuid4().hex[:8]}"
    engine = make_engine(_postgres_database(name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    _drop_postgres_database(name)


def _postgres() -> tuple[str, int]:
    admin = make_url(PG_ADMIN_URL)
    return admin.host or "127.0.0.1", admin.port or 5432


def _url_on(port: int, name: str, password: str = "") -> str:
    url = make_url(PG_ADMIN_URL).set(host="127.0.0.1", port=port, database=name)
    if password:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def test_serve_started_while_postgres_is_away_waits_and_then_serves(
    tmp_path: Path, pg_name: str
) -> None:
    port, web = free_port(), free_port()
    env = {
        "SENDWELL_DATABASE_URL": _url_on(port, pg_name),
        "SENDWELL_DATABASE_WAIT_SECONDS": "60",
        "PORT": str(web),
    }
    server = _serve(tmp_path, env)
    waiting = threading.Event()
    lines: list[str] = []

    def watch() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            lines.append(line)
            if "Waiting up to 60 s for the database" in line:
                waiting.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    forwarder = Forwarder(port, _postgres())
    try:
        assert waiting.wait(30), "".join(lines)
        assert server.poll() is None, "".join(lines)
        forwarder.start()
        _until_up(server, f"http://127.0.0.1:{web}")
    finally:
        server.terminate()
        server.wait(timeout=15)
        watcher.join(timeout=5)
        for stream in (server.stdout, server.stderr):
            assert stream is not None
            stream.close()
        forwarder.stop()
    assert "Connection refused" in "".join(lines)


def test_worker_gives_up_after_the_wait_with_one_clear_line(tmp_path: Path) -> None:
    url = _url_on(free_port(), "sendwell", password="hunter2-secret")
    result = run(
        tmp_path,
        "worker",
        env={"SENDWELL_DATABASE_URL": url, "SENDWELL_DATABASE_WAIT_SECONDS": "2"},
    )
    assert result.returncode == 1
    lines = " ".join(result.stderr.split())
    assert "Waiting up to 2 s for the database" in lines
    assert "Error: cannot reach the database at" in lines
    assert re.search(r"after waiting [23] s: connection failed", lines), lines
    assert "Connection refused" in lines
    assert "hunter2-secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_that_does_not_exist_stops_the_worker_without_waiting(tmp_path: Path) -> None:
    """The server answered: waiting would not create the database, it would only hide the
    mistake for a minute."""
    missing = f"sendwell_missing_{uuid.uuid4().hex[:8]}"
    result = run(
        tmp_path,
        "worker",
        env={
            "SENDWELL_DATABASE_URL": _url_on(_postgres()[1], missing),
            "SENDWELL_DATABASE_WAIT_SECONDS": "60",
        },
    )
    assert result.returncode == 1
    assert "Waiting" not in result.stderr
    assert f'database "{missing}" does not exist' in result.stderr
    assert "Traceback" not in result.stderr


def test_short_commands_do_not_wait_and_say_why(tmp_path: Path) -> None:
    url = _url_on(free_port(), "sendwell")
    env = {"SENDWELL_DATABASE_URL": url, "SENDWELL_DATABASE_WAIT_SECONDS": "60"}
    for command in (["users", "list"], ["db", "current"]):
        result = run(tmp_path, *command, env=env)
        assert result.returncode == 1, command
        assert "Waiting" not in result.stderr
        assert "Error: cannot reach the database at" in result.stderr
        assert "Traceback" not in result.stderr


def test_db_upgrade_waits_too(tmp_path: Path, pg_name: str) -> None:
    """A deployment that runs `db upgrade` as the server boots gets the same patience."""
    port = free_port()
    forwarder = Forwarder(port, _postgres())
    timer = threading.Timer(2.0, forwarder.start)
    timer.start()
    try:
        result = run(
            tmp_path,
            "db",
            "upgrade",
            env={
                "SENDWELL_DATABASE_URL": _url_on(port, pg_name),
                "SENDWELL_DATABASE_WAIT_SECONDS": "60",
            },
        )
    finally:
        timer.join()
        forwarder.stop()
    assert result.returncode == 0, result.stderr
    assert "Waiting up to 60 s for the database" in result.stderr
    assert f"Database is at revision {migrate.HEAD} (latest)." in result.stdout


@pytest.mark.parametrize(
    ("message", "waits", "reason"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
            "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
            "connections?",
            True,
            'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
            "Connection refused",
        ),
        (
            'connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database '
            "system is starting up",
            True,
            None,
        ),
        (
            'connection to server at "127.0.0.1", port 5432 failed: FATAL:  remaining '
            "connection slots are reserved for non-replication superuser connections",
            True,
            None,
        ),
        (
            'connection to server at "::1", port 5432 failed: Connection refused\n'
            'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
            'authentication failed for user "sendwell"',
            False,
            'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
            'authentication failed for user "sendwell"',
        ),
    ],
)
def test_which_refusals_are_waited_for(message: str, waits: bool, reason: str | None) -> None:
    """PostgreSQL's own words, one line per address tried: a server that will take
    connections is waited for; one that refused this login for good, on any address, is not,
    and its refusal is the reason given."""
    engine = make_engine("postgresql+psycopg://sendwell@127.0.0.1:5432/sendwell")
    assert db._may_come(engine, message) is waits
    assert db._reason(message) == (reason or message.splitlines()[0])
