"""Settings: defaults, the generated local secrets file, and one clear line per bad value."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sendwell.config import ConfigError, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SECRET_KEY", "TOKEN_KEYS", "DATABASE_URL", "BASE_URL", "SANDBOX"):
        monkeypatch.delenv(f"SENDWELL_{name}", raising=False)
    data_dir = tmp_path / "var"
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(data_dir))
    return data_dir


def test_first_run_creates_private_secrets_and_reuses_them(clean_env: Path) -> None:
    first = load_settings()
    secrets_file = clean_env / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    second = load_settings()
    assert first.secret_key == second.secret_key
    assert first.token_keys == second.token_keys
    assert first.sqlalchemy_url == f"sqlite:///{(clean_env / 'sendwell.db').as_posix()}"
    assert first.sandbox is False


def test_environment_overrides_the_secrets_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_settings()
    monkeypatch.setenv("SENDWELL_SECRET_KEY", "s" * 40)
    assert load_settings().secret_key == "s" * 40


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TOKEN_KEYS", "not-a-key", "SENDWELL_TOKEN_KEYS: key 1 is not a Fernet key"),
        ("SECRET_KEY", "short", "SENDWELL_SECRET_KEY: String should have at least 32"),
        ("BASE_URL", "mail.example.com", "SENDWELL_BASE_URL: must be an http:// or https://"),
        ("DATABASE_URL", "mysql://x", "SENDWELL_DATABASE_URL: must be a sqlite:/// or"),
        ("SANDBOX", "perhaps", "SENDWELL_SANDBOX: Input should be a valid boolean"),
        ("SESSION_DAYS", "0", "SENDWELL_SESSION_DAYS: Input should be greater than or equal"),
    ],
)
def test_bad_value_names_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"SENDWELL_{name}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)
