"""Real mail servers on loopback: Dovecot (IMAP + LMTP) and SMTP submission servers.

Submission is Debian's Postfix (signing in through Dovecot, delivering over LMTP) or aiosmtpd
(a small server in this folder); a test runs against those its ``submission_servers`` mark
names, Postfix alone by default. Each server starts once per test process (pytest-xdist
worker), under its own temporary folder and on free ports; every test starts with empty
mailboxes and the same users and passwords.
"""

from __future__ import annotations

import email
import imaplib
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage, Message
from email.utils import make_msgid
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.app import create_app
from sendwell.campaigns import recipients, service
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.dispatch.engine import Dispatcher, DispatchPolicy
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.kit.clock import utcnow
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import Enrollment, Mailbox, User
from tests.conftest import IN_CI, Database, create_first_account, csrf_from, make_settings
from tests.imap_smtp.certificates import TestCertificates, make_certificates
from tests.imap_smtp.dovecot import DOVECOT_PROGRAMS, Dovecot, free_port
from tests.imap_smtp.oauth import TokenIntrospection
from tests.imap_smtp.postfix import Postfix
from tests.imap_smtp.postfix import unavailable as postfix_unavailable
from tests.imap_smtp.proxy import DropAfterDataProxy
from tests.imap_smtp.submission import LmtpDelivery, server_context, start_submission

SENDER = "ada@example.com"
SENDER_PASSWORD = "first app password"
USERS = {
    SENDER: SENDER_PASSWORD,
    "ann@example.com": "ann-password",
    "bob@example.com": "bob-password",
    "cy@example.com": "cy-password",
}


@dataclass
class Submission:
    """One SMTP submission server: implicit TLS and STARTTLS services, and a proxy that can
    lose its answer to a message (in front of the implicit-TLS service)."""

    name: str
    smtps_port: int
    submission_port: int
    proxy: DropAfterDataProxy
    # Returns once every message the server accepted is delivered or bounced.
    settle: Callable[[], None]
    # The Postfix instance, for what only its log tells; None for aiosmtpd.
    postfix: Postfix | None = None


@dataclass
class MailServers:
    """The running servers and what a client needs to reach them."""

    dovecot: Dovecot
    certificates: TestCertificates
    submission: Submission
    # XOAUTH2 access tokens both servers accept, and whose they are.
    tokens: dict[str, str]

    @property
    def smtps_port(self) -> int:
        return self.submission.smtps_port

    @property
    def submission_port(self) -> int:
        return self.submission.submission_port

    @property
    def proxy(self) -> DropAfterDataProxy:
        return self.submission.proxy

    @property
    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificates.ca_file))

    def form(self, password: str = SENDER_PASSWORD, **changes: str) -> dict[str, str]:
        """The "Other" link form for the sender: SMTPS and IMAPS on loopback."""
        values = {
            "email": SENDER,
            "smtp_host": "127.0.0.1",
            "smtp_port": str(self.smtps_port),
            "smtp_security": "tls",
            "imap_host": "127.0.0.1",
            "imap_port": str(self.dovecot.imaps_port),
            "imap_security": "tls",
            "username": SENDER,
            "password": password,
            "auth_method": "password",
        }
        values.update(changes)
        return values

    def imap(self, user: str) -> imaplib.IMAP4_SSL:
        connection = imaplib.IMAP4_SSL(
            "127.0.0.1", self.dovecot.imaps_port, ssl_context=self.client_context, timeout=10
        )
        connection.login(f'"{user}"', self.dovecot.passwords[user])
        return connection

    def messages(self, user: str, folder: str = "INBOX") -> list[Message]:
        """Every message in a user's folder once the submission server has delivered all it
        accepted (bounces included), read over IMAP, oldest first."""
        self.submission.settle()
        connection = self.imap(user)
        try:
            connection.select(f'"{folder}"', readonly=True)
            _typ, data = connection.uid("SEARCH", "ALL")
            uids = data[0].split() if data and data[0] else []
            found = []
            for uid in uids:
                _typ, parts = connection.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next(p[1] for p in parts if isinstance(p, tuple))
                found.append(email.message_from_bytes(raw))
            return found
        finally:
            connection.logout()

    def write_into(self, user: str, message: EmailMessage, folder: str = "INBOX") -> None:
        """Put a message straight into a mailbox over IMAP (APPEND), as a mail client would."""
        connection = self.imap(user)
        try:
            typ, data = connection.append(f'"{folder}"', "", None, message.as_bytes())
            assert typ == "OK", data
        finally:
            connection.logout()


@dataclass
class Mailstore:
    """Dovecot and what it trusts: the test CA and the XOAUTH2 token introspection."""

    root: Path
    dovecot: Dovecot
    certificates: TestCertificates
    introspection: TokenIntrospection


def _skip_or_fail(reason: str, install: str) -> NoReturn:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(f"{reason}, so these IMAP/SMTP tests cannot run ({install} to run them)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that uses the servers runs against the submission servers its
    ``submission_servers`` mark names; Postfix alone when it names none."""
    if "mail" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("submission_servers")
    names = marker.args if marker else ("postfix",)
    metafunc.parametrize("mail", names, indirect=True, scope="function")


@pytest.fixture(scope="session")
def mailstore() -> Iterator[Mailstore]:
    missing = [path for path in DOVECOT_PROGRAMS if not Path(path).exists()]
    if missing:
        _skip_or_fail(
            f"Dovecot is not installed ({', '.join(missing)} missing)",
            "install Debian's dovecot-imapd and dovecot-lmtpd",
        )
    root = Path(tempfile.mkdtemp(prefix="sw-mail-"))
    root.chmod(0o755)  # Dovecot's and Postfix's unprivileged processes must reach their folders.
    certificates = make_certificates(root)
    introspection = TokenIntrospection()
    introspection.start()
    dovecot = Dovecot(root, certificates, introspection_url=introspection.url)
    dovecot.passwords = dict(USERS)
    try:
        dovecot.start()
        yield Mailstore(root, dovecot, certificates, introspection)
    finally:
        dovecot.stop()
        introspection.stop()
        shutil.rmtree(root, ignore_errors=True)


def _proxy(mailstore: Mailstore, upstream_port: int) -> DropAfterDataProxy:
    certificates = mailstore.certificates
    proxy = DropAfterDataProxy(
        upstream_port=upstream_port,
        server_context=server_context(str(certificates.cert_file), str(certificates.key_file)),
        client_context=ssl.create_default_context(cafile=str(certificates.ca_file)),
    )
    proxy.start()
    return proxy


@pytest.fixture(scope="session")
def aiosmtpd_submission(mailstore: Mailstore) -> Iterator[Submission]:
    """aiosmtpd, delivering over LMTP before it answers the message."""
    dovecot, certificates = mailstore.dovecot, mailstore.certificates
    handler = LmtpDelivery(
        dovecot.lmtp_port, lambda: dovecot.passwords, lambda: mailstore.introspection.tokens
    )
    context = server_context(str(certificates.cert_file), str(certificates.key_file))
    controllers: list[Controller] = []
    proxy: DropAfterDataProxy | None = None
    try:
        ports = free_port(), free_port()
        for port, implicit in zip(ports, (True, False), strict=True):
            controllers.append(
                start_submission(
                    handler, context, lambda: dovecot.passwords, port=port, implicit_tls=implicit
                )
            )
        proxy = _proxy(mailstore, ports[0])
        yield Submission("aiosmtpd", ports[0], ports[1], proxy, lambda: None)
    finally:
        if proxy is not None:
            proxy.stop()
        for controller in controllers:
            controller.stop()


@pytest.fixture(scope="session")
def postfix_submission(mailstore: Mailstore) -> Iterator[Submission]:
    """Debian's Postfix, signing senders in through Dovecot and delivering over LMTP."""
    reason = postfix_unavailable()
    if reason:
        _skip_or_fail(reason, "run as root with Debian's postfix installed")
    dovecot = mailstore.dovecot
    folder = mailstore.root / "postfix"
    folder.mkdir()
    postfix = Postfix(folder, mailstore.certificates, dovecot.auth_socket, dovecot.lmtp_port, USERS)
    proxy: DropAfterDataProxy | None = None
    try:
        postfix.start()
        proxy = _proxy(mailstore, postfix.smtps_port)
        yield Submission(
            "postfix", postfix.smtps_port, postfix.submission_port, proxy, postfix.settle, postfix
        )
    finally:
        if proxy is not None:
            proxy.stop()
        postfix.stop()


@pytest.fixture
def mail(request: pytest.FixtureRequest, mailstore: Mailstore) -> MailServers:
    """The servers with every mailbox empty and the original passwords."""
    submission: Submission = request.getfixturevalue(f"{request.param}_submission")
    return fresh_servers(mailstore, submission)


def fresh_servers(mailstore: Mailstore, submission: Submission) -> MailServers:
    """The servers with every mailbox empty and the original passwords."""
    # Nothing from an earlier test may still be on its way into a mailbox.
    submission.settle()
    mailstore.dovecot.reset(USERS)
    mailstore.introspection.tokens.clear()
    submission.proxy.drops_left = 0
    submission.proxy.dropped = 0
    return MailServers(
        mailstore.dovecot, mailstore.certificates, submission, mailstore.introspection.tokens
    )


@pytest.fixture
def settings(database: Database, mail: MailServers) -> Settings:
    return make_settings(
        database.url,
        mail_server_ca_file=str(mail.certificates.ca_file),
        provider_timeout_seconds=5,
        dns_timeout_seconds=0.3,
    )


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as test_client:
        create_first_account(test_client)
        yield test_client


def link_other(client: TestClient, form: dict[str, str]) -> httpx.Response:
    """Submit the "Other (IMAP/SMTP)" form as the link page serves it."""
    page = client.post(
        "/mailboxes/link",
        data={
            "csrftoken": csrf_from(client.get("/messaging/settings").text),
            "own": "on",
            "email": form["email"],
            "provider": "imap",
        },
    )
    assert page.status_code == 200, page.text
    response: httpx.Response = client.post(
        "/mailboxes/link/server",
        data={"csrftoken": csrf_from(page.text), **form},
        follow_redirects=False,
    )
    return response


@dataclass
class Outreach:
    """A linked "Other" account's campaigns and a dispatcher that sends through real servers."""

    client: TestClient
    factory: sessionmaker[Session]
    services: ProviderServices
    mail: MailServers

    def mailbox_id(self) -> int:
        with session_scope(self.factory) as db:
            return int(db.scalars(select(Mailbox.id).where(Mailbox.email == SENDER)).one())

    def campaign(self, steps: list[tuple[str, str, int]], emails: list[str]) -> int:
        """A started campaign of (subject, body, delay minutes) steps to these recipients."""
        mailbox_id = self.mailbox_id()
        with session_scope(self.factory) as db:
            user = db.scalars(select(User)).one()
            mailbox = db.get(Mailbox, mailbox_id)
            assert mailbox is not None
            mailbox.min_gap_seconds = 0
            campaign = service.create_campaign(
                db,
                user,
                name="Outreach",
                mailbox_id=mailbox_id,
                steps=[service.StepIn(s, b, d) for s, b, d in steps],
                start_delay_minutes=0,
            )
            recipients.add_recipients(
                db,
                user,
                campaign.id,
                [recipients.RecipientIn(e, first_name=e.split("@")[0]) for e in emails],
            )
            campaign_id = campaign.id
        with session_scope(self.factory) as db:
            user = db.scalars(select(User)).one()
            service.start(db, user, campaign_id)
        return campaign_id

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self.factory,
            self.services,
            DispatchPolicy(
                lease=timedelta(seconds=60),
                inbound_interval=timedelta(seconds=0),
                settle_grace=timedelta(seconds=0),
            ),
            unsubscribe=UnsubscribeLinks("http://testserver", "k" * 40),
        )

    def due_now(self, campaign_id: int) -> None:
        """Skip the wait before the next step."""
        with session_scope(self.factory) as db:
            db.execute(
                update(Enrollment)
                .where(Enrollment.campaign_id == campaign_id, Enrollment.next_due_at.is_not(None))
                .values(next_due_at=utcnow() - timedelta(seconds=1))
            )

    def enrollments(self, campaign_id: int) -> dict[str, Enrollment]:
        with session_scope(self.factory) as db:
            rows = list(db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign_id)))
            db.expunge_all()
        return {row.email: row for row in rows}

    def reply(self, sender: str, to_message: Message, text: str = "Sounds good.") -> None:
        """The recipient answers: their reply lands in the sender's INBOX."""
        reply = EmailMessage()
        reply["From"] = sender
        reply["To"] = SENDER
        reply["Subject"] = "Re: " + str(to_message["Subject"])
        reply["Message-ID"] = make_msgid(domain="example.com")
        reply["In-Reply-To"] = str(to_message["Message-ID"])
        reply["References"] = " ".join(
            [*str(to_message.get("References", "")).split(), str(to_message["Message-ID"])]
        )
        reply.set_content(text)
        self.mail.write_into(SENDER, reply)


@pytest.fixture
def outreach(client: TestClient, mail: MailServers) -> Outreach:
    response = link_other(client, mail.form())
    assert response.status_code == 303, response.text
    app: Any = client.app
    return Outreach(client, app.state.session_factory, app.state.services, mail)
