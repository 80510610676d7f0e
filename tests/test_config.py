"""Settings: defaults, the generated local secrets file, and one clear line per bad value."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sendwell.config import ConfigError, base_url_problem, load_settings

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 (what `--host` is given, not a bind)


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


@pytest.fixture
def listening_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_base_url_follows_host_and_port_unless_set(listening_env: pytest.MonkeyPatch) -> None:
    assert load_settings().base_url == "http://127.0.0.1:8000"
    listening_env.setenv("PORT", "8742")
    assert load_settings().base_url == "http://127.0.0.1:8742"
    listening_env.setenv("HOST", "localhost")
    assert load_settings().base_url == "http://localhost:8742"
    assert not load_settings().base_url_given
    # `sendwell serve --host … --port …` wins over the variables, as it does for listening.
    assert load_settings().listening_on(EVERY_ADDRESS, 9000).base_url == "http://127.0.0.1:9000"
    listening_env.setenv("SENDWELL_BASE_URL", "https://mail.example.com/")
    given = load_settings()
    assert given.base_url == "https://mail.example.com"
    assert given.base_url_given
    assert given.listening_on("127.0.0.1", 9000).base_url == "https://mail.example.com"


def test_a_port_that_is_not_one_is_named(listening_env: pytest.MonkeyPatch) -> None:
    listening_env.setenv("PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "PORT must be a port number from 1 to 65535, not 'eighty'"


@pytest.mark.parametrize(
    ("base_url", "host", "port", "warned"),
    [
        ("", "127.0.0.1", 8742, ""),
        ("http://127.0.0.1:8742", "127.0.0.1", 8742, ""),
        ("http://localhost:8742", EVERY_ADDRESS, 8742, ""),
        # A public name: a reverse proxy may forward it to any port, which cannot be told here.
        ("https://mail.example.com", "127.0.0.1", 8742, ""),
        ("http://127.0.0.1:8000", "127.0.0.1", 8742, "listens on 127.0.0.1:8742"),
        ("http://localhost:8742", "192.0.2.10", 8742, "listens on 192.0.2.10:8742"),
        ("", EVERY_ADDRESS, 8742, "works only in a browser on this machine"),
    ],
)
def test_the_server_warns_when_sign_ins_would_not_come_back(
    listening_env: pytest.MonkeyPatch, base_url: str, host: str, port: int, warned: str
) -> None:
    if base_url:
        listening_env.setenv("SENDWELL_BASE_URL", base_url)
    settings = load_settings().listening_on(host, port)
    problem = base_url_problem(settings, host, port)
    if warned:
        assert warned in problem
        assert "SENDWELL_BASE_URL" in problem
    else:
        assert problem == ""
