"""`sendwell keys` and `sendwell mailboxes` as an operator runs them, in a fresh folder."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from sendwell.accounts.service import create_user
from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.kit.clock import utcnow
from sendwell.kit.tokenbox import TokenBox, TokenBoxError
from sendwell.models import Mailbox, MailboxStatus
from tests.conftest import STRONG_PASSWORD
from tests.test_cli import run

ACCESS = "ya29.plain-access-token"
REFRESH = "1//0g-plain-refresh-token"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    result = run(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return tmp_path


def folder_key(folder: Path) -> str:
    """The token key `sendwell` generated in the folder's var/secrets.env on first run."""
    for line in (folder / "var" / "secrets.env").read_text().splitlines():
        if line.startswith("SENDWELL_TOKEN_KEYS="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no SENDWELL_TOKEN_KEYS in secrets.env")


def database_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'var' / 'sendwell.db').as_posix()}"


def seed_mailbox(folder: Path, key: str, *, provider: str = "google") -> None:
    """A connected mailbox whose tokens are sealed with ``key``, as the server would store them."""
    box = TokenBox([key])
    engine = make_engine(database_url(folder))
    try:
        with session_scope(make_session_factory(engine)) as db:
            user = create_user(db, email="ada@example.com", password=STRONG_PASSWORD)
            db.add(
                Mailbox(
                    workspace_id=user.workspace_id,
                    owner_id=user.id,
                    provider=provider,
                    subject="108876543210987654321",
                    email="ada@gmail.test",
                    status=MailboxStatus.CONNECTED,
                    access_token=box.seal(ACCESS),
                    refresh_token=box.seal(REFRESH),
                    token_expires_at=utcnow() + timedelta(hours=1),
                )
            )
    finally:
        engine.dispose()


def stored_tokens(folder: Path) -> tuple[str | None, str | None]:
    engine = make_engine(database_url(folder))
    try:
        with session_scope(make_session_factory(engine)) as db:
            mailbox = db.scalars(select(Mailbox)).one()
            return mailbox.access_token, mailbox.refresh_token
    finally:
        engine.dispose()


def test_keys_generate_prints_a_fernet_key(tmp_path: Path) -> None:
    result = run(tmp_path, "keys", "generate")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert len(result.stdout.strip().splitlines()) == 1
    box = TokenBox([key])
    assert box.open(box.seal("secret")) == "secret"
    Fernet(key)
    assert run(tmp_path, "keys", "generate").stdout.strip() != key


def test_keys_rotate_in_a_fresh_folder_reports_nothing_to_do(folder: Path) -> None:
    result = run(folder, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert "Re-encrypted 0 stored secrets under the newest key." in result.stdout


def test_keys_rotate_refuses_a_key_that_cannot_open_the_stored_tokens(folder: Path) -> None:
    seed_mailbox(folder, folder_key(folder))
    before = stored_tokens(folder)
    unrelated = Fernet.generate_key().decode()

    result = run(folder, "keys", "rotate", env={"SENDWELL_TOKEN_KEYS": unrelated})

    assert result.returncode == 1
    assert "cannot be decrypted" in result.stderr
    assert "Nothing was changed." in result.stderr
    assert "Traceback" not in result.stderr
    assert stored_tokens(folder) == before


def test_keys_rotate_moves_tokens_to_the_new_key(folder: Path) -> None:
    old = folder_key(folder)
    seed_mailbox(folder, old)
    new = Fernet.generate_key().decode()

    result = run(folder, "keys", "rotate", env={"SENDWELL_TOKEN_KEYS": f"{new},{old}"})

    assert result.returncode == 0, result.stderr
    assert "Re-encrypted 2 stored secrets under the newest key." in result.stdout
    access, refresh = stored_tokens(folder)
    assert access is not None
    assert refresh is not None
    assert (TokenBox([new]).open(access), TokenBox([new]).open(refresh)) == (ACCESS, REFRESH)
    with pytest.raises(TokenBoxError):
        TokenBox([old]).open(access)
    # With the old key removed, everything still reads.
    again = run(folder, "keys", "rotate", env={"SENDWELL_TOKEN_KEYS": new})
    assert again.returncode == 0, again.stderr
    assert "Re-encrypted 2 stored secrets" in again.stdout


def test_mailboxes_check_in_a_fresh_folder(folder: Path) -> None:
    result = run(folder, "mailboxes", "check")
    assert result.returncode == 0, result.stderr
    assert "Checked 0 connected mailboxes: 0 healthy, 0 failing." in result.stdout


def test_mailboxes_check_reports_a_mailbox_whose_host_is_not_configured(folder: Path) -> None:
    seed_mailbox(folder, folder_key(folder))

    result = run(folder, "mailboxes", "check")

    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert "Checked 1 connected mailboxes: 0 healthy, 1 failing." in result.stdout
