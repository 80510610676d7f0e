"""IMAP/SMTP ("Other") accounts: check the settings, test both servers, then save or restore.

Nothing is saved until SMTP and IMAP have both accepted the sign-in. The password is sealed
with the token keys; reauthenticating is entering the new one, which passes the same test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.kit.signals import dispatch_work
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.service import Linked, check_may_relink, get_mailbox, transition
from sendwell.models import Mailbox, MailboxEventKind, MailboxStatus, MailServer, User
from sendwell.providers.base import ProviderName
from sendwell.providers.errors import ProviderError
from sendwell.providers.imap_smtp import ImapSmtpProvider
from sendwell.providers.mail_server import AuthMethod, Endpoint, Security, ServerLogin

Choice = TypeVar("Choice", Security, AuthMethod)
MAX_SECRET_LENGTH = 4096
DEFAULT_PORTS = {
    ("smtp", Security.TLS): 465,
    ("smtp", Security.STARTTLS): 587,
    ("imap", Security.TLS): 993,
    ("imap", Security.STARTTLS): 143,
}


class ConnectionTestFailed(InvalidInput):
    code = "connection_test_failed"


@dataclass(frozen=True)
class ServerSettingsIn:
    """What the user typed, as text; checked by ``login_from``."""

    email: str
    smtp_host: str
    smtp_port: str
    smtp_security: str
    imap_host: str
    imap_port: str
    imap_security: str
    username: str
    password: str
    auth_method: str = AuthMethod.PASSWORD.value


@dataclass(frozen=True)
class ServerSettingsShown:
    """The stored settings of an account, to fill the form again (never the password)."""

    email: str
    smtp_host: str
    smtp_port: int | None
    smtp_security: str
    imap_host: str
    imap_port: int | None
    imap_security: str
    username: str
    auth_method: str
    webmail_url: str = ""


def suggested_settings(email: str) -> ServerSettingsShown:
    """Usual names and ports for an address's domain, for the user to correct."""
    domain = email.rpartition("@")[2].strip().lower()
    return ServerSettingsShown(
        email=email,
        smtp_host=f"smtp.{domain}" if domain else "",
        smtp_port=DEFAULT_PORTS[("smtp", Security.TLS)],
        smtp_security=Security.TLS.value,
        imap_host=f"imap.{domain}" if domain else "",
        imap_port=DEFAULT_PORTS[("imap", Security.TLS)],
        imap_security=Security.TLS.value,
        username=email,
        auth_method=AuthMethod.PASSWORD.value,
    )


def stored_settings(db: Session, user: User, mailbox_id: int) -> ServerSettingsShown:
    """An IMAP/SMTP account's settings, for the Reauthenticate form."""
    shown = settings_of(db, get_mailbox(db, user, mailbox_id))
    if shown is None:
        raise NotFound("This account is not an IMAP/SMTP account.", code="not_a_server_account")
    return shown


def settings_of(db: Session, mailbox: Mailbox) -> ServerSettingsShown | None:
    """The servers an account uses, or None for an OAuth account."""
    server = repo.get_mail_server(db, mailbox.id)
    if server is None:
        return None
    return ServerSettingsShown(
        email=mailbox.email,
        smtp_host=server.smtp_host,
        smtp_port=server.smtp_port,
        smtp_security=server.smtp_security,
        imap_host=server.imap_host,
        imap_port=server.imap_port,
        imap_security=server.imap_security,
        username=server.username,
        auth_method=server.auth_method,
        webmail_url=server.webmail_url,
    )


def login_from(form: ServerSettingsIn) -> ServerLogin:
    """The settings checked one by one, each problem named in words."""
    if not form.password:
        raise InvalidInput("Enter the password or app password.", code="no_password")
    if len(form.password) > MAX_SECRET_LENGTH:
        raise InvalidInput("That password is too long.", code="password_too_long")
    return ServerLogin(
        email=form.email,
        username=form.username.strip() or form.email,
        secret=form.password,
        auth=_choice(AuthMethod, form.auth_method, "sign-in method"),
        smtp=_endpoint("SMTP", form.smtp_host, form.smtp_port, form.smtp_security),
        imap=_endpoint("IMAP", form.imap_host, form.imap_port, form.imap_security),
    )


def link_server_account(
    db: Session, services: ProviderServices, *, user: User, form: ServerSettingsIn
) -> Linked:
    """Test both servers, then connect a new account or restore (reauthenticate) a known one."""
    login = login_from(form)
    # The servers first: only someone who can sign in there learns whether, and by whom, the
    # address is already linked here.
    check_both_servers(services, login)
    mailbox = repo.get_by_identity(db, ProviderName.IMAP, login.email)
    check_may_relink(mailbox, user, login.email)
    reconnected = mailbox is not None
    if mailbox is None:
        mailbox = _new_mailbox(db, user, login.email)
    was_connected = mailbox.status is not MailboxStatus.DISCONNECTED
    _save_server(db, services, mailbox, login)
    mailbox.transient_failures = 0
    mailbox.first_transient_failure_at = None
    mailbox.token_version += 1
    transition(
        db,
        mailbox,
        MailboxStatus.CONNECTED,
        kind=MailboxEventKind.REAUTHENTICATED if was_connected else MailboxEventKind.CONNECTED,
        actor=user,
        reason=f"Signed in to {login.smtp.host} (SMTP) and {login.imap.host} (IMAP) as "
        f"{login.username}.",
    )
    db.flush()
    dispatch_work.request(db)
    return Linked(mailbox, reconnected, [])


def check_both_servers(services: ProviderServices, login: ServerLogin) -> None:
    """Both servers must accept the sign-in; otherwise the user reads their answer."""
    provider = services.mail_host(ProviderName.IMAP)
    if not isinstance(provider, ImapSmtpProvider):
        raise InvalidInput("IMAP/SMTP accounts cannot be linked on this server.")
    try:
        provider.check_connection(login)
    except ProviderError as error:
        raise ConnectionTestFailed(
            f"{error.message} Nothing was saved.", code="connection_test_failed"
        ) from error


def _new_mailbox(db: Session, user: User, email: str) -> Mailbox:
    mailbox = Mailbox(
        workspace_id=user.workspace_id,
        owner_id=user.id,
        provider=ProviderName.IMAP,
        subject=email,
        email=email,
        status=MailboxStatus.DISCONNECTED,
        display_name=user.name,
    )
    db.add(mailbox)
    db.flush()
    return mailbox


def _save_server(
    db: Session, services: ProviderServices, mailbox: Mailbox, login: ServerLogin
) -> None:
    server = repo.get_mail_server(db, mailbox.id)
    if server is None:
        server = MailServer(mailbox_id=mailbox.id)
        db.add(server)
    server.smtp_host, server.smtp_port = login.smtp.host, login.smtp.port
    server.smtp_security = login.smtp.security.value
    server.imap_host, server.imap_port = login.imap.host, login.imap.port
    server.imap_security = login.imap.security.value
    server.username = login.username
    server.auth_method = login.auth.value
    server.secret = services.box.seal(login.secret)
    server.updated_at = utcnow()


def _endpoint(what: str, host: str, port: str, security: str) -> Endpoint:
    name = host.strip().lower().removesuffix(".")
    if not name or len(name) > 255 or any(c.isspace() or c in "/@:" for c in name):
        raise InvalidInput(f"Enter the {what} server's name, e.g. mail.example.com.")
    chosen = _choice(Security, security, f"{what} security")
    if not port.strip():
        return Endpoint(name, DEFAULT_PORTS[(what.lower(), chosen)], chosen)
    try:
        number = int(port.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise InvalidInput(f"The {what} port must be a number from 1 to 65535.")
    return Endpoint(name, number, chosen)


def _choice(kind: type[Choice], value: str, what: str) -> Choice:
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"Choose the {what} from the list.") from None
