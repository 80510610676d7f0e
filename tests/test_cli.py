"""The `sendwell` command as an operator runs it, in a fresh folder with no variables set."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from sendwell.app import create_app
from sendwell.config import load_settings
from tests.conftest import STRONG_PASSWORD, csrf_from
from tests.sandbox_support import free_port

SENDWELL = [sys.executable, "-m", "sendwell"]


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, input: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SENDWELL_")}
    clean.update(env or {})
    return subprocess.run(
        [*SENDWELL, *args],
        cwd=cwd,
        env=clean,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    result = run(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "latest" in result.stdout
    return tmp_path


def test_users_and_tokens_share_the_projects_database(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create_user(folder, "ada@example.com", STRONG_PASSWORD)
    assert created.returncode == 0, created.stderr
    assert "Created admin ada@example.com" in created.stdout

    member = create_user(folder, "bob@example.com", STRONG_PASSWORD)
    assert "Created member bob@example.com" in member.stdout

    token_run = run(folder, "tokens", "create", "--email", "ada@example.com")
    assert token_run.returncode == 0, token_run.stderr
    token = token_run.stdout.strip().splitlines()[-1]
    assert token.startswith("sw_")

    monkeypatch.chdir(folder)
    for name in ("SECRET_KEY", "TOKEN_KEYS", "DATABASE_URL", "DATA_DIR"):
        monkeypatch.delenv(f"SENDWELL_{name}", raising=False)
    with TestClient(create_app(load_settings())) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "ada@example.com"


def test_duplicate_user_is_a_clear_error(folder: Path) -> None:
    create_user(folder, "ada@example.com", STRONG_PASSWORD)
    again = create_user(folder, "ADA@example.com", STRONG_PASSWORD)
    assert again.returncode == 1
    assert "A user with the email ada@example.com already exists." in again.stderr


def test_weak_password_is_a_clear_error(folder: Path) -> None:
    result = create_user(folder, "ada@example.com", "abc")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr


def test_token_for_unknown_user_is_a_clear_error(folder: Path) -> None:
    result = run(folder, "tokens", "create", "--email", "nobody@example.com")
    assert result.returncode == 1
    assert "No user has the email nobody@example.com." in result.stderr


def create_user(folder: Path, email: str, password: str) -> subprocess.CompletedProcess[str]:
    """`users create`, the password on standard input as a script gives it."""
    return run(
        folder, "users", "create", "--email", email, "--password-stdin", input=password + "\n"
    )


def test_set_password_replaces_the_old_one(folder: Path) -> None:
    create_user(folder, "ada@example.com", STRONG_PASSWORD)
    result = run(
        folder,
        "users",
        "set-password",
        "--email",
        "ada@example.com",
        "--password-stdin",
        input="another long passphrase\n",
    )
    assert result.returncode == 0, result.stderr
    listing = run(folder, "users", "list")
    assert "ada@example.com" in listing.stdout


def test_passwords_are_never_arguments(folder: Path) -> None:
    # An argument is visible to every user of the machine in the process list.
    result = run(
        folder, "users", "create", "--email", "ada@example.com", "--password", STRONG_PASSWORD
    )
    assert result.returncode == 2
    assert "No such option" in result.stderr


def _api_answers(folder: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(folder)
    for name in ("SECRET_KEY", "TOKEN_KEYS", "DATABASE_URL", "DATA_DIR"):
        monkeypatch.delenv(f"SENDWELL_{name}", raising=False)
    with TestClient(create_app(load_settings())) as client:
        status: int = client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code
    return status


def test_set_password_asks_about_api_tokens_and_revokes_them_when_told(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(folder, "ada@example.com", STRONG_PASSWORD)
    token = run(folder, "tokens", "create", "--email", "ada@example.com").stdout.split()[-1]
    change = ("users", "set-password", "--email", "ada@example.com", "--password-stdin")
    unanswered = run(folder, *change, input="another long passphrase\n")
    assert unanswered.returncode == 2
    assert "add --revoke-tokens or --keep-tokens" in unanswered.stderr
    kept = run(folder, *change, "--keep-tokens", input="another long passphrase\n")
    assert kept.returncode == 0, kept.stderr
    assert _api_answers(folder, token, monkeypatch) == 200
    revoked = run(folder, *change, "--revoke-tokens", input="yet another passphrase\n")
    assert "its 1 API token revoked" in revoked.stdout
    assert _api_answers(folder, token, monkeypatch) == 401


def test_bad_setting_stops_with_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", env={"SENDWELL_TOKEN_KEYS": "nonsense"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SENDWELL_TOKEN_KEYS" in lines[0]


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--port", "9")
    assert result.returncode == 1
    assert "sendwell db upgrade" in result.stderr


def test_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    result = run(tmp_path, "users", "list")
    assert result.returncode == 1
    assert "sendwell db upgrade" in result.stderr


def test_the_database_file_is_private(folder: Path) -> None:
    created = create_user(folder, "ada@example.com", STRONG_PASSWORD)
    assert created.returncode == 0, created.stderr
    files = [path for path in (folder / "var").iterdir() if path.name.startswith("sendwell.db")]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def _serve(folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_") and k != "HOST"}
    return subprocess.Popen(
        [*SENDWELL, "serve", "--no-dispatcher"],
        cwd=folder,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until_up(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "sendwell serve did not start"
        time.sleep(0.2)


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    out, err = process.communicate(timeout=15)
    return out, err


def test_sign_ins_return_to_the_port_serve_listens_on(folder: Path) -> None:
    """`PORT=… make run`: the provider sends the browser back to that port, not to 8000."""
    port = free_port()
    server = _serve(folder, {"PORT": str(port), "SENDWELL_SANDBOX": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        _until_up(server, url)
        with httpx.Client(base_url=url) as browser:
            setup = browser.get("/setup")
            browser.post(
                "/setup",
                data={
                    "csrftoken": csrf_from(setup.text),
                    "email": "ada@example.com",
                    "password": STRONG_PASSWORD,
                },
            )
            settings = browser.get("/messaging/settings")
            assert settings.status_code == 200, settings.text
            started = browser.post(
                "/mailboxes/link",
                data={
                    "csrftoken": csrf_from(settings.text),
                    "own": "on",
                    "email": "ada@gmail.test",
                },
            )
        assert started.status_code == 303, started.text
        at_host = urlsplit(started.headers["location"])
        assert f"{at_host.scheme}://{at_host.netloc}" == url
        assert parse_qs(at_host.query)["redirect_uri"] == [f"{url}/mailboxes/callback/google"]
    finally:
        out, err = _stop(server)
    assert f"Sendwell is running at {url}" in out
    assert "Warning" not in err


def test_serve_warns_when_the_base_url_is_not_where_it_listens(folder: Path) -> None:
    port = free_port()
    server = _serve(folder, {"PORT": str(port), "SENDWELL_BASE_URL": "http://127.0.0.1:8000"})
    try:
        _until_up(server, f"http://127.0.0.1:{port}")
    finally:
        _out, err = _stop(server)
    assert (
        f"Warning: SENDWELL_BASE_URL is http://127.0.0.1:8000, but this server listens on "
        f"127.0.0.1:{port}"
    ) in " ".join(err.split())


def test_an_admin_invites_from_the_command_line(folder: Path) -> None:
    create_user(folder, "ada@example.com", STRONG_PASSWORD)
    create_user(folder, "bob@example.com", STRONG_PASSWORD)
    refused = run(
        folder, "users", "invite", "--email", "eve@example.com", "--by", "bob@example.com"
    )
    assert refused.returncode == 1
    assert "Only workspace admins manage the team." in refused.stderr
    invited = run(
        folder, "users", "invite", "--email", "eve@example.com", "--by", "ada@example.com"
    )
    assert invited.returncode == 0, invited.stderr
    assert "Invitation for eve@example.com (works once, until" in invited.stderr
    link = invited.stdout.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:8000/invitations/")
    listing = run(folder, "users", "list")
    assert "active" in listing.stdout
