"""The `sendwell` command: serve, db, users, tokens. Thin: every rule lives in a service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
import uvicorn
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.config import ConfigError, Settings, load_settings
from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.kit.errors import SendwellError
from sendwell.kit.logging import configure_logging
from sendwell.kit.tokenbox import TokenBox, TokenBoxError
from sendwell.mailboxes.tokens import reencrypt_all
from sendwell.models import Role

app = typer.Typer(help="Sendwell: outreach campaigns from your own mailbox.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Workspace users.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
keys_app = typer.Typer(help="Token-encryption keys.", no_args_is_help=True)
mailboxes_app = typer.Typer(help="Connected email accounts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(mailboxes_app, name="mailboxes")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as error:
        err.print(f"[bold red]Configuration error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    """A database session for one command; a service error becomes a message and exit 1."""
    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    except SendwellError as error:
        err.print(f"[bold red]Error:[/] {error.message}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _require_current_schema(engine: object) -> None:
    from sendwell import migrate

    if not migrate.is_up_to_date(engine):  # type: ignore[arg-type]
        err.print(
            "[bold red]Error:[/] the database schema is not up to date. "
            "Run `sendwell db upgrade` first.",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = 8000,
) -> None:
    """Run the web UI and API."""
    from sendwell.app import create_app

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine)
    application = create_app(settings, engine=engine, background_jobs=True)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    out.print(
        f"Sendwell is running at [bold]http://{shown_host}:{port}[/]  (Ctrl+C to stop)",
        highlight=False,
    )
    if settings.sandbox:
        out.print(
            "Sandbox providers are on: addresses at *.gmail.test and *.outlook.test are emulated.",
            highlight=False,
        )
    try:
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            server_header=False,
        )
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from sendwell import migrate

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate.upgrade(engine)
        out.print(f"Database is at revision {migrate.current_revision(engine)} (latest).")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the applied revision and whether it is the latest."""
    from sendwell import migrate

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        current, head = migrate.current_revision(engine), migrate.head_revision()
    finally:
        engine.dispose()
    state = "latest" if current == head else f"behind; latest is {head}"
    out.print(f"Revision {current or 'none'} ({state}).")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    admin: Annotated[
        bool, typer.Option("--admin", help="Make the user a workspace admin.")
    ] = False,
) -> None:
    """Add a user (the very first user always becomes the workspace admin)."""
    with _unit_of_work() as db:
        user = accounts.create_user(
            db, email=email, password=password, name=name, role=Role.ADMIN if admin else Role.MEMBER
        )
        out.print(f"Created {user.role.value} {user.email} (id {user.id}).", highlight=False)


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Set a new password for a user and sign them out everywhere."""
    with _unit_of_work() as db:
        user = accounts.set_password(db, email=email, password=password)
        out.print(f"Password changed for {user.email}; their sessions were ended.", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List the workspace's users."""
    with _unit_of_work() as db:
        table = Table("id", "email", "name", "role", "created")
        for user in accounts.list_users(db):
            table.add_row(
                str(user.id),
                user.email,
                user.name,
                user.role.value,
                user.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="Whose token it is.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create an API token; the token itself is printed alone on the last line."""
    with _unit_of_work() as db:
        user = accounts.get_user_by_email(db, email)
        _token, plaintext = accounts.create_api_token(db, user, name)
    err.print(f"API token for {user.email} (shown once, keep it safe):", highlight=False)
    print(plaintext)  # noqa: T201


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key; put it first in SENDWELL_TOKEN_KEYS, then run `sendwell keys rotate`."""
    print(Fernet.generate_key().decode())  # noqa: T201


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored token under the first key of SENDWELL_TOKEN_KEYS."""
    settings = _settings()
    with _unit_of_work() as db:
        try:
            changed = reencrypt_all(db, TokenBox(settings.token_key_list))
        except TokenBoxError as error:
            err.print(f"[bold red]Error:[/] {error} Nothing was changed.", highlight=False)
            raise typer.Exit(1) from None
    out.print(
        f"Re-encrypted {changed} stored secrets under the newest key. Older keys can now "
        "be removed from SENDWELL_TOKEN_KEYS.",
        highlight=False,
    )


@mailboxes_app.command("check")
def mailboxes_check() -> None:
    """Check every connected mailbox now (the server also does this periodically)."""
    from sendwell.mailboxes.connections import build_connections
    from sendwell.mailboxes.tasks import check_connections
    from sendwell.providers.registry import build_registry, make_http_client

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine)
    with make_http_client(settings) as http:
        connections = build_connections(settings, build_registry(settings, http))
        report = check_connections(make_session_factory(engine), connections)
    engine.dispose()
    out.print(
        f"Checked {report.checked} connected mailboxes: {report.healthy} healthy, "
        f"{report.failed} failing.",
        highlight=False,
    )


def main() -> None:
    app()
