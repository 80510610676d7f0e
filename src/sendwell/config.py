"""Settings: from `SENDWELL_*` variables, the local secrets file, or defaults."""

from __future__ import annotations

import ipaddress
import os
import secrets
import ssl
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from sendwell.kit.outbound import LOCAL_NETWORKS, OutboundPolicy

ENV_PREFIX = "SENDWELL_"
SECRETS_FILE_NAME = "secrets.env"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Addresses that mean "every interface": the server is reached on loopback from this machine.
ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104


class ConfigError(Exception):
    """A setting has a bad value; the message names the variable."""


class Settings(BaseSettings):
    """Sendwell's configuration, read from the environment (prefix `SENDWELL_`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the SQLite database and the generated local secrets.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at DATA_DIR/sendwell.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host:5432/dbname",
    )
    database_wait_seconds: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="How long `serve`, `worker` and `db upgrade` wait at startup for a "
        "PostgreSQL server that is not accepting connections yet (restarting, still starting "
        "up, full).",
    )
    secret_key: str = Field(
        min_length=32, description="Signs session cookies and CSRF tokens (32+ characters)."
    )
    token_keys: str = Field(
        description="Comma-separated Fernet keys that encrypt mailbox tokens, newest first."
    )
    base_url: str = Field(
        default="",
        description="The public address users reach Sendwell at; https makes cookies Secure. "
        "Empty: http:// and the address `sendwell serve` listens on (HOST and PORT).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed; empty believes no one's.",
    )
    sandbox_demo: bool = Field(
        default=False,
        description="Allow the sandbox on a public https BASE_URL (a demo server, never real use).",
    )
    sandbox: bool = Field(
        default=False, description="Serve the emulated Google and Microsoft providers."
    )
    sandbox_admin_token: str = Field(
        default="",
        description="Bearer token for the sandbox's admin endpoints from other hosts; "
        "without it they answer loopback callers only.",
    )
    sandbox_url: str = Field(
        default="",
        description="Where the server reaches the sandbox; empty means BASE_URL/sandbox.",
    )
    google_client_id: str = Field(default="", description="Google OAuth client id.")
    google_client_secret: str = Field(default="", description="Google OAuth client secret.")
    microsoft_client_id: str = Field(
        default="", description="Microsoft Entra application (client) id."
    )
    microsoft_client_secret: str = Field(default="", description="Microsoft Entra client secret.")
    microsoft_tenant: str = Field(
        default="common",
        pattern=r"^[A-Za-z0-9.-]+$",
        description="Entra tenant: common, organizations, or a tenant id or domain.",
    )
    google_publishing_status: Literal["testing", "production"] = Field(
        default="production",
        description="The Google OAuth client's publishing status; testing ends grants in 7 days.",
    )
    microsoft_client_secret_expires: date | None = Field(
        default=None,
        description="The day the Microsoft client secret expires (YYYY-MM-DD), for warnings.",
    )
    expiry_warning_days: float = Field(
        default=7, ge=0, le=60, description="How long before an expected expiry people are warned."
    )
    testing_warning_days: float = Field(
        default=2,
        ge=0,
        le=7,
        description="How long before a Google Testing-mode grant ends its owner is warned.",
    )
    provider_timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, description="How long one call to a mail host may take."
    )
    dns_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How long an MX lookup may take."
    )
    dns_servers: str = Field(
        default="",
        description="DNS servers for MX discovery and domain health, e.g. 192.0.2.53 or "
        "192.0.2.53:5353 (comma-separated, one port); empty uses the system's resolvers.",
    )
    health_check_minutes: float = Field(
        default=10, gt=0, le=1440, description="How often every connected mailbox is checked."
    )
    transient_failures_before_reauth: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Passing failures in a row before a mailbox needs the user.",
    )
    transient_minutes_before_reauth: float = Field(
        default=240,
        gt=0,
        le=43_200,
        description="...and for at least this long (minutes).",
    )
    inbound_poll_seconds: float = Field(
        default=60,
        gt=0,
        le=3600,
        description="How often each mailbox's replies are read while it sends or receives.",
    )
    inbound_quiet_poll_seconds: float = Field(
        default=300,
        gt=0,
        le=86_400,
        description="How often, at the least, a quiet mailbox's replies are read: after each "
        "read that finds nothing and follows no send, the wait doubles up to this.",
    )
    settle_grace_seconds: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="Wait before looking in Sent for a send whose outcome is unknown.",
    )
    calls_in_flight: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Host calls (sends, inbox reads) one worker makes at once, each for a "
        "different mailbox; 1 sends one message at a time.",
    )
    microsoft_min_send_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="Shortest interval between two sends from one Microsoft mailbox "
        "(Exchange Online holds back more than 30 messages a minute).",
    )
    microsoft_sent_copy_lag_seconds: float = Field(
        default=600,
        ge=0,
        le=86_400,
        description="How late Graph may file a send's copy in Sent Items; until then a send "
        "whose answer was lost is not taken as unsent.",
    )
    bounce_pause_percent: float = Field(
        default=2.0,
        gt=0,
        le=100,
        description="New campaigns pause themselves when at least this percentage of their "
        "last BOUNCE_PAUSE_MIN_SENDS sends bounced (each campaign can change it).",
    )
    bounce_pause_min_sends: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="How many of a new campaign's latest sends the bounce rate is measured "
        "over; it is not judged before that many (each campaign can change it).",
    )
    mail_server_ca_file: str = Field(
        default="",
        description="Extra CA certificates (PEM) trusted for IMAP/SMTP accounts' servers.",
    )
    smtp_url: str = Field(
        default="",
        description="Outgoing mail for notifications, e.g. smtp://user:pass@host:587?from=a@b",
    )
    unsubscribe_link_days: int = Field(
        default=400,
        ge=30,
        le=3650,
        description="How long the unsubscribe link in a sent email works.",
    )
    outbound_allow: str = Field(
        default="",
        description="Comma-separated host names and address ranges (CIDR) that webhooks and "
        "IMAP/SMTP accounts may reach although they are private, e.g. mail.corp.example,"
        "10.20.0.0/16; everything else must be a public address.",
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description="Older spelling: 1 adds loopback and private ranges to OUTBOUND_ALLOW.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long one webhook request may take."
    )
    webhook_retry_hours: float = Field(
        default=24,
        gt=0,
        le=720,
        description="How long a delivery is retried, and an endpoint may fail before it is "
        "disabled.",
    )
    metrics_token: str = Field(
        default="",
        description="Bearer token that /metrics requires; empty turns /metrics off (404).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    session_days: int = Field(default=14, ge=1, le=365, description="Sign-in lifetime in days.")
    sign_in_max_failures: int = Field(
        default=5, ge=1, le=1000, description="Failed sign-ins per address before a lockout."
    )
    sign_in_lockout_minutes: int = Field(
        default=15, ge=1, le=1440, description="Window and lockout length for failed sign-ins."
    )
    max_request_mb: float = Field(
        default=10, gt=0, le=1024, description="Largest request body (a form or JSON), in MB."
    )
    max_upload_mb: float = Field(
        default=50, gt=0, le=10_240, description="Largest file upload (a CSV import), in MB."
    )

    # False when BASE_URL was not set and follows the listening address instead.
    _base_url_given: bool = PrivateAttr(default=True)

    @model_validator(mode="wrap")
    @classmethod
    def _base_url_follows_the_listening_address(
        cls, data: Any, handler: ModelWrapValidatorHandler[Settings]
    ) -> Settings:
        given = not isinstance(data, dict) or bool(data.get("base_url"))
        if not given:
            data = {**data, "base_url": listening_url(*listening_address())}
        settings = handler(data)
        settings._base_url_given = given
        return settings

    @property
    def base_url_given(self) -> bool:
        """Whether BASE_URL was set, rather than following HOST and PORT."""
        return self._base_url_given

    def listening_on(self, host: str, port: int) -> Settings:
        """These settings for a server listening on host:port: an unset BASE_URL follows it."""
        if self.base_url_given:
            return self
        return self.model_copy(update={"base_url": listening_url(host, port)})

    @field_validator("token_keys")
    @classmethod
    def _token_keys_are_fernet_keys(cls, value: str) -> str:
        keys = [key.strip() for key in value.split(",") if key.strip()]
        if not keys:
            raise ValueError("needs at least one Fernet key")
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(
                    f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return ",".join(keys)

    @field_validator("base_url", "sandbox_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an http:// or https:// address, e.g. https://mail.example.com"
            )
        return value.rstrip("/")

    @field_validator("sandbox")
    @classmethod
    def _sandbox_stays_off_public_servers(cls, value: bool, info: ValidationInfo) -> bool:
        base_url = str(info.data.get("base_url") or "")
        if value and is_public_https(base_url) and not info.data.get("sandbox_demo"):
            raise ValueError(
                f"the sandbox emulates Google and Microsoft and must not run on the public "
                f"address {base_url}; turn it off, or set SENDWELL_SANDBOX_DEMO=1 for a demo "
                "server"
            )
        return value

    @field_validator("mail_server_ca_file")
    @classmethod
    def _ca_file_is_readable(cls, value: str) -> str:
        if value:
            try:
                ssl.create_default_context().load_verify_locations(cafile=value)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cannot read CA certificates from {value}: {error}") from None
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers_parse(cls, value: str) -> str:
        from sendwell.providers.domain_dns import parse_servers

        parse_servers(value)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_usable(cls, value: str) -> str:
        if value:
            from sendwell.kit.notices import parse_smtp_url

            parse_smtp_url(value)
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow_parses(cls, value: str) -> str:
        OutboundPolicy.parse(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL with the SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sendwell.db').as_posix()}"

    @property
    def sandbox_base_url(self) -> str:
        return (self.sandbox_url or f"{self.base_url}/sandbox").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def outbound_policy(self) -> OutboundPolicy:
        """Where user-named hosts may be: public addresses plus what the admin allowed."""
        allow = self.outbound_allow
        if self.webhooks_allow_private:
            allow = f"{allow},{LOCAL_NETWORKS}"
        return OutboundPolicy.parse(allow)

    @property
    def unsubscribe_lifetime(self) -> timedelta:
        return timedelta(days=self.unsubscribe_link_days)

    @property
    def token_key_list(self) -> list[str]:
        return self.token_keys.split(",")


def listening_address() -> tuple[str, int]:
    """Where `sendwell serve` listens unless told otherwise: the HOST and PORT variables."""
    host = os.environ.get("HOST", "").strip() or DEFAULT_HOST
    raw_port = os.environ.get("PORT", "").strip()
    if not raw_port:
        return host, DEFAULT_PORT
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise ValueError(f"PORT must be a port number from 1 to 65535, not {raw_port!r}")
    return host, int(raw_port)


def listening_url(host: str, port: int) -> str:
    """The http:// address of a server listening on host:port, as a browser here reaches it."""
    name = host.strip("[]")
    if name in ANY_ADDRESS:
        name = DEFAULT_HOST
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def base_url_problem(settings: Settings, host: str, port: int) -> str:
    """Why OAuth callbacks to BASE_URL would not reach a server listening on host:port ("" if
    they would, or if a reverse proxy may stand between them, which cannot be told from here)."""
    if not settings.base_url_given:
        if host.strip("[]") in ANY_ADDRESS:
            return (
                f"this server listens on every address, but SENDWELL_BASE_URL is not set, so "
                f"sign-ins return to {settings.base_url}, which works only in a browser on "
                "this machine; set SENDWELL_BASE_URL to the address others use"
            )
        return ""
    parts = urlsplit(settings.base_url)
    if not is_loopback_host(parts.hostname or ""):
        return ""
    url_port = parts.port or (443 if parts.scheme == "https" else 80)
    reaches_loopback = host.strip("[]") in ANY_ADDRESS or is_loopback_host(host)
    if url_port == port and reaches_loopback:
        return ""
    where = f"{host}:{port}"
    return (
        f"SENDWELL_BASE_URL is {settings.base_url}, but this server listens on {where}: "
        f"sign-ins will return to an address where it is not listening; unset "
        f"SENDWELL_BASE_URL or set it to {listening_url(host, port)}"
    )


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (a name that is not an address is not)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_public_https(url: str) -> bool:
    """An https:// address whose host is not loopback: a server others reach."""
    parts = urlsplit(url)
    return parts.scheme == "https" and not is_loopback_host(parts.hostname or "")


def ensure_local_secrets(data_dir: Path) -> Path:
    """Create the data folder's secrets file (mode 0600) on first run; return its path."""
    path = data_dir / SECRETS_FILE_NAME
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    content = (
        "# Generated by Sendwell on first run. Keep it private; back it up with the database.\n"
        f"SENDWELL_SECRET_KEY={secrets.token_urlsafe(48)}\n"
        f"SENDWELL_TOKEN_KEYS={Fernet.generate_key().decode()}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return path


def load_settings() -> Settings:
    """Read settings the way every command does: environment first, then the local secrets file."""
    try:
        data_dir = Path(os.environ.get(f"{ENV_PREFIX}DATA_DIR", "var"))
        needs_file = not (
            os.environ.get(f"{ENV_PREFIX}SECRET_KEY") and os.environ.get(f"{ENV_PREFIX}TOKEN_KEYS")
        )
        env_file = ensure_local_secrets(data_dir) if needs_file else None
        return Settings(_env_file=env_file)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except OSError as error:
        raise ConfigError(
            f"{ENV_PREFIX}DATA_DIR: cannot prepare {error.filename}: {error.strerror}"
        ) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad variable and what is wrong with it."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        return message  # the whole configuration, e.g. PORT, which has no prefix
    if first["type"] == "missing":
        message = "is required"
    return f"{ENV_PREFIX}{str(first['loc'][0]).upper()}: {message}"
