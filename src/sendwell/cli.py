"""The `sendwell` command: serve, db, users, tokens. Thin: every rule lives in a service."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography.fernet import Fernet
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigError,
    Settings,
    base_url_problem,
    is_loopback_host,
    is_public_https,
    listening_url,
    load_settings,
)
from sendwell.db import (
    DatabaseUnreachable,
    make_engine,
    make_session_factory,
    reach,
    session_scope,
)
from sendwell.kit.errors import SendwellError
from sendwell.kit.logging import configure_logging
from sendwell.models import Role

if TYPE_CHECKING:
    from prometheus_client.exposition import ThreadingWSGIServer

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


def _settings(*, wired: bool = True) -> Settings:
    """The settings, logging configured. `wired`: every feature's event subscribers too, which
    any unit of work needs (`wiring.register`); the `db` commands run only migrations, and skip
    importing the features."""
    try:
        settings = load_settings()
    except ConfigError as error:
        err.print(f"[bold red]Configuration error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    if wired:
        from sendwell import wiring

        wiring.register()
    return settings


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    """A database session for one command; a service error becomes a message and exit 1."""
    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        _require_current_schema(engine)
        with session_scope(_session_factory(settings, engine)) as session:
            yield session
    except SendwellError as error:
        err.print(f"[bold red]Error:[/] {error.message}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _require_current_schema(engine: Engine, *, wait: float = 0) -> None:
    """Stop with a message unless the database answers (see `_require_reachable`) and its
    schema is at the latest revision."""
    from sendwell import migrate

    _require_reachable(engine, wait=wait)
    if not migrate.is_up_to_date(engine):
        err.print(
            "[bold red]Error:[/] the database schema is not up to date. "
            "Run `sendwell db upgrade` first.",
            highlight=False,
        )
        raise typer.Exit(1)


def _require_reachable(engine: Engine, *, wait: float) -> None:
    """Stop with a message unless the database takes a connection; a PostgreSQL server not
    taking connections yet is waited for up to `wait` seconds (`db.reach`)."""
    where = escape(engine.url.render_as_string(hide_password=True))

    def tell_waiting(reason: str) -> None:
        err.print(
            f"Waiting up to {wait:g} s for the database at {where} ({escape(reason)}).",
            highlight=False,
        )

    try:
        reach(engine, wait=wait, on_wait=tell_waiting)
    except DatabaseUnreachable as error:
        after = f" after waiting {error.waited:.0f} s" if error.waited >= 1 else ""
        err.print(
            f"[bold red]Error:[/] cannot reach the database at {where}{after}: "
            f"{escape(error.reason)}",
            highlight=False,
        )
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = DEFAULT_PORT,
    no_dispatcher: Annotated[
        bool, typer.Option("--no-dispatcher", help="Serve pages only; `sendwell worker` sends.")
    ] = False,
) -> None:
    """Run the web UI and API."""
    import uvicorn

    from sendwell.app import create_app

    settings = _settings().listening_on(host, port)
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine, wait=settings.database_wait_seconds)
    token = _setup_token_for(settings, engine, host)
    application = create_app(
        settings,
        engine=engine,
        background_jobs=True,
        dispatcher=not no_dispatcher,
        setup_token=token,
    )
    out.print(
        f"Sendwell is running at [bold]{listening_url(host, port)}[/]  (Ctrl+C to stop)",
        highlight=False,
    )
    problem = base_url_problem(settings, host, port)
    if problem:
        err.print(f"[bold yellow]Warning:[/] {problem}.", highlight=False)
    if settings.sandbox:
        out.print(
            "[bold]Sandbox mode[/]: addresses at *.gmail.test and *.outlook.test are emulated; "
            "not for real use.",
            highlight=False,
        )
    if token:
        out.print(
            f"No account yet. Create the first one at {settings.base_url}/setup with the setup "
            f"token: [bold]{token}[/]",
            highlight=False,
        )
    try:
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            # Forwarded addresses and schemes are believed only from the configured proxies.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            server_header=False,
        )
    finally:
        engine.dispose()


def _session_factory(settings: Settings, engine: Engine) -> sessionmaker[Session]:
    """Sessions whose notices go out through the server's mail (SENDWELL_SMTP_URL)."""
    from sendwell.kit.notices import outgoing_mail

    return make_session_factory(engine, outgoing_mail(settings.smtp_url, settings.base_url))


def _setup_token_for(settings: Settings, engine: Engine, host: str) -> str:
    """The first account's setup token when others can reach this server and none exists."""
    from sendwell.accounts import service as accounts

    if is_loopback_host(host) and not is_public_https(settings.base_url):
        return ""
    with session_scope(make_session_factory(engine)) as db:
        if not accounts.needs_first_account(db):
            return ""
    return accounts.setup_token(settings.secret_key)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from sendwell import migrate

    settings = _settings(wired=False)
    engine = make_engine(settings.sqlalchemy_url)
    _require_reachable(engine, wait=settings.database_wait_seconds)
    try:
        migrate.upgrade(engine)
        out.print(f"Database is at revision {migrate.current_revision(engine)} (latest).")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the applied revision and whether it is the latest."""
    from sendwell import migrate

    settings = _settings(wired=False)
    engine = make_engine(settings.sqlalchemy_url)
    _require_reachable(engine, wait=0)
    try:
        current, head = migrate.current_revision(engine), migrate.head_revision()
    finally:
        engine.dispose()
    state = "latest" if current == head else f"behind; latest is {head}"
    out.print(f"Revision {current or 'none'} ({state}).")


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
    metrics_port: Annotated[
        int,
        typer.Option(help="Serve /metrics on this port (needs SENDWELL_METRICS_TOKEN); 0: off."),
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run only the sending engine and webhook delivery (any number of workers may share a
    PostgreSQL database)."""
    import signal
    import threading

    from sendwell import wiring
    from sendwell.dispatch.runner import DispatcherThread, build_dispatcher
    from sendwell.kit.jobs import JobKind
    from sendwell.mailboxes.provider_services import build_services
    from sendwell.providers.registry import build_registry, make_http_client
    from sendwell.webhooks.runner import build_deliverer

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine, wait=settings.database_wait_seconds)
    stop = threading.Event()
    factory = _session_factory(settings, engine)
    metrics = _worker_metrics(settings, factory, metrics_host, metrics_port)
    with make_http_client(settings) as http:
        services = build_services(settings, build_registry(settings, http))

        def stop_now(*_args: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stop_now)
        signal.signal(signal.SIGINT, stop_now)
        if once:
            dispatcher = build_dispatcher(settings, factory, services)
            deliverer = build_deliverer(settings, factory)
            with dispatcher.present():
                dispatcher.run_until_idle()
            deliverer.deliver_due()
            deliverer.close()
        else:
            # The same sending jobs `sendwell serve` runs beside its pages.
            running = wiring.jobs().start([JobKind.SENDING], settings, factory, services)
            dispatchers = [job for _name, job in running.jobs if isinstance(job, DispatcherThread)]
            for dispatcher_job in dispatchers:
                worker_id = dispatcher_job.dispatcher.worker_id
                err.print(f"Worker {worker_id} is sending. Ctrl+C to stop.", highlight=False)
            stop.wait()
            for dispatcher_job in dispatchers:
                dispatcher_job.finish()  # its pass ends before webhook delivery stops
            running.stop()
    if metrics is not None:
        metrics.shutdown()
    engine.dispose()


def _worker_metrics(
    settings: Settings, factory: sessionmaker[Session], host: str, port: int
) -> ThreadingWSGIServer | None:
    """The worker's own /metrics server, when asked for one."""
    if not port:
        return None
    # Imported only when asked for: the metrics registry comes with the web framework.
    from sendwell.metrics.server import serve_metrics
    from sendwell.metrics.web import build_registry as build_metrics_registry

    if not settings.metrics_token:
        err.print(
            "[bold red]Error:[/] --metrics-port needs SENDWELL_METRICS_TOKEN, the token "
            "scrapers must send.",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        return serve_metrics(
            build_metrics_registry(factory), token=settings.metrics_token, host=host, port=port
        )
    except OSError as error:
        err.print(
            f"[bold red]Error:[/] cannot serve metrics on {host}:{port}: {error.strerror}",
            highlight=False,
        )
        raise typer.Exit(2) from None


PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input instead of a prompt."
    ),
]


def _read_password(from_stdin: bool) -> str:
    """A password from a hidden prompt (asked twice) or one line of standard input.

    Never from an argument: arguments are visible to every user of the machine (ps).
    """
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    admin: Annotated[
        bool, typer.Option("--admin", help="Make the user a workspace admin.")
    ] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user (the very first user always becomes the workspace admin)."""
    from sendwell.accounts import service as accounts

    password = _read_password(password_stdin)
    with _unit_of_work() as db:
        user = accounts.create_user(
            db, email=email, password=password, name=name, role=Role.ADMIN if admin else Role.MEMBER
        )
        out.print(f"Created {user.role.value} {user.email} (id {user.id}).", highlight=False)


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    password_stdin: PasswordStdin = False,
    revoke_tokens: Annotated[
        bool | None,
        typer.Option(
            "--revoke-tokens/--keep-tokens",
            help="Also revoke the user's API tokens (asked when not given).",
        ),
    ] = None,
) -> None:
    """Set a new password for a user and sign them out everywhere."""
    from sendwell.accounts import service as accounts

    password = _read_password(password_stdin)
    with _unit_of_work() as db:
        tokens = len(accounts.list_api_tokens(db, accounts.get_user_by_email(db, email)))
        if revoke_tokens is None:
            revoke_tokens = bool(tokens) and _ask_to_revoke(tokens, password_stdin)
        user = accounts.set_password(
            db, email=email, password=password, revoke_tokens=revoke_tokens
        )
        revoked = f" and its {tokens} API token{'s' if tokens != 1 else ''} revoked"
        out.print(
            f"Password changed for {user.email}; their sessions were ended"
            f"{revoked if revoke_tokens and tokens else ''}.",
            highlight=False,
        )


def _ask_to_revoke(tokens: int, password_from_stdin: bool) -> bool:
    if password_from_stdin or not sys.stdin.isatty():
        err.print(
            f"[bold red]Error:[/] the user has {tokens} API token{'s' if tokens != 1 else ''}: "
            "add --revoke-tokens or --keep-tokens.",
            highlight=False,
        )
        raise typer.Exit(2)
    answer: bool = typer.confirm(
        f"Also revoke their {tokens} API token{'s' if tokens != 1 else ''}?", default=True
    )
    return answer


@users_app.command("list")
def users_list() -> None:
    """List the workspace's users."""
    from sendwell.accounts import service as accounts

    with _unit_of_work() as db:
        table = Table("id", "email", "name", "role", "status", "created")
        for user in accounts.list_users(db):
            table.add_row(
                str(user.id),
                user.email,
                user.name,
                user.role.value,
                "active" if user.is_active else "deactivated",
                user.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


@users_app.command("invite")
def users_invite(
    email: Annotated[str, typer.Option(help="Who to invite.")],
    by: Annotated[str, typer.Option("--by", help="The inviting admin's email address.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Invite them as a workspace admin.")
    ] = False,
) -> None:
    """Create a one-time invitation link (valid 7 days); the link is printed alone on the last
    line, to give to the person (the Team page can email it when SENDWELL_SMTP_URL is set)."""
    from sendwell.accounts import service as accounts
    from sendwell.teams import service as teams

    settings = _settings()
    with _unit_of_work() as db:
        inviter = accounts.get_user_by_email(db, by)
        invited = teams.invite(
            db,
            inviter,
            email=email,
            role=Role.ADMIN if admin else Role.MEMBER,
            base_url=settings.base_url,
        )
    err.print(
        f"Invitation for {invited.invitation.email} (works once, until "
        f"{invited.invitation.expires_at:%Y-%m-%d %H:%M} UTC):",
        highlight=False,
    )
    print(invited.link)  # noqa: T201


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="Whose token it is.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create an API token; the token itself is printed alone on the last line."""
    from sendwell.accounts import service as accounts

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
    """Re-encrypt every stored token and IMAP/SMTP password under the first key of
    SENDWELL_TOKEN_KEYS."""
    from sendwell.kit.tokenbox import TokenBox, TokenBoxError
    from sendwell.mailboxes.tokens import reencrypt_all
    from sendwell.webhooks.service import reencrypt_secrets

    settings = _settings()
    with _unit_of_work() as db:
        try:
            box = TokenBox(settings.token_key_list)
            changed = reencrypt_all(db, box) + reencrypt_secrets(db, box)
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
    from sendwell.mailboxes.provider_services import build_services
    from sendwell.mailboxes.tasks import check_connections
    from sendwell.providers.registry import build_registry, make_http_client

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    _require_current_schema(engine)
    with make_http_client(settings) as http:
        services = build_services(settings, build_registry(settings, http))
        report = check_connections(_session_factory(settings, engine), services)
    engine.dispose()
    out.print(
        f"Checked {report.checked} connected mailboxes: {report.healthy} healthy, "
        f"{report.failed} failing.",
        highlight=False,
    )


recipients_app = typer.Typer(help="Campaign recipients.", no_args_is_help=True)
app.add_typer(recipients_app, name="recipients")
SKIPPED_SHOWN = 20


@recipients_app.command("import")
def recipients_import(
    campaign_id: Annotated[int, typer.Argument(help="The campaign to add recipients to.")],
    file: Annotated[str, typer.Argument(help="A CSV file (UTF-8) with a header row.")],
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help='Where a column goes: "Header=field", the field being email, first_name, '
            "last_name, company, title, ignore or a custom field name. Repeatable.",
        ),
    ] = None,
    skip_previous: Annotated[
        str,
        typer.Option(
            "--skip-previous",
            help="Skip people who, in another campaign of the workspace, did this "
            "(comma-separated: contacted, replied, bounced, unsubscribed; none skips nobody).",
        ),
    ] = "replied,bounced,unsubscribed",
) -> None:
    """Add a CSV file's recipients to a campaign, acting as the campaign's owner."""
    import csv
    import os
    from pathlib import Path

    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from sendwell.campaigns import importer
    from sendwell.campaigns.import_api import skip_choice

    mapping: dict[str, str] = {}
    for pair in maps or []:
        header, equals, field = pair.rpartition("=")
        if not equals or not header.strip() or not field.strip():
            err.print(
                f'[bold red]Error:[/] --map takes "Header=field", not "{escape(pair)}".',
                highlight=False,
            )
            raise typer.Exit(1)
        mapping[header.strip()] = field.strip()
    settings = _settings()
    path = Path(file)
    try:
        handle = path.open("rb")
        size = os.fstat(handle.fileno()).st_size
    except OSError as error:
        err.print(
            f"[bold red]Error:[/] cannot read {escape(str(path))}: {error.strerror}.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    with handle, _unit_of_work() as db:
        owner = importer.campaign_owner(db, campaign_id)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        with progress:
            reader = progress.wrap_file(
                handle, total=size, description=f"Importing {escape(path.name)}"
            )
            try:
                report = importer.import_csv(
                    db,
                    owner,
                    campaign_id,
                    reader,
                    mapping=mapping,
                    allow_test_domains=settings.sandbox,
                    skip_previous=skip_choice([skip_previous]),
                )
            except SendwellError:
                progress.live.transient = True  # the error alone says what happened
                raise
    skipped = report.skipped
    columns = ", ".join(
        f"{escape(header)} → "
        + (target if target in (*importer.TARGETS, importer.IGNORE) else f"{{{{ {target} }}}}")
        for header, target in report.columns.items()
    )
    out.print(f"Columns: {columns}.", highlight=False)
    out.print(
        f"Imported {report.imported} recipient{'' if report.imported == 1 else 's'}; "
        f"skipped {len(skipped)}.",
        highlight=False,
    )
    if skipped:
        reasons = ", ".join(f"{n} {kind}" for kind, n in report.skipped_by_reason.items())
        out.print(f"Skipped: {escape(reasons)}.", highlight=False)
    if not skipped:
        return
    table = Table("row", "email", "reason")
    for item in skipped[:SKIPPED_SHOWN]:
        table.add_row(str(item.row), escape(item.email), escape(item.reason))
    out.print(table)
    listing_path = path.with_name(f"{path.stem}.skipped.csv")
    try:
        with listing_path.open("w", encoding="utf-8-sig", newline="") as listing:
            writer = csv.writer(listing)
            writer.writerow(["row", "email", "reason"])
            writer.writerows([item.row, item.email, item.reason] for item in skipped)
    except OSError as error:
        err.print(
            f"[bold yellow]Warning:[/] the skipped rows could not be written to "
            f"{escape(str(listing_path))}: {error.strerror}.",
            highlight=False,
        )
        return
    more = f"Showing the first {SKIPPED_SHOWN}. " if len(skipped) > SKIPPED_SHOWN else ""
    rows = "The skipped row is" if len(skipped) == 1 else f"All {len(skipped)} skipped rows are"
    out.print(f"{more}{rows} listed in {escape(str(listing_path))}.", highlight=False)


def main() -> None:
    app()
