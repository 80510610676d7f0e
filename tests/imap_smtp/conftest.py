"""Real mail servers on loopback: Dovecot (IMAP + LMTP) and an SMTP submission server.

One set per test process (pytest-xdist worker), each under its own temporary folder and on
free ports; every test starts with empty mailboxes and the same users and passwords.
"""

from __future__ import annotations

import email
import imaplib
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage, Message
from email.utils import make_msgid
from pathlib import Path
from typing import Any

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
from sendwell.mailboxes.connections import Connections
from sendwell.models import Enrollment, Mailbox, User
from tests.conftest import IN_CI, Database, create_first_account, csrf_from, make_settings
from tests.imap_smtp.certificates import TestCertificates, make_certificates
from tests.imap_smtp.dovecot import DOVECOT_PROGRAMS, Dovecot, free_port
from tests.imap_smtp.oauth import TokenIntrospection
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
class MailServers:
    """The running servers and what a client needs to reach them."""

    dovecot: Dovecot
    certificates: TestCertificates
    smtps_port: int
    submission_port: int
    proxy: DropAfterDataProxy
    # XOAUTH2 access tokens both servers accept, and whose they are.
    tokens: dict[str, str]

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
        """Every message in a user's folder, read over IMAP, oldest first."""
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


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(
        reason + ", so the IMAP/SMTP tests cannot run (install Debian's dovecot-imapd and "
        "dovecot-lmtpd to run them)"
    )


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    missing = [path for path in DOVECOT_PROGRAMS if not Path(path).exists()]
    if missing:
        _skip_or_fail(f"Dovecot is not installed ({', '.join(missing)} missing)")
    root = Path(tempfile.mkdtemp(prefix="sw-mail-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes must reach their folders.
    certificates = make_certificates(root)
    introspection = TokenIntrospection()
    introspection.start()
    dovecot = Dovecot(root, certificates, introspection_url=introspection.url)
    dovecot.passwords = dict(USERS)
    controllers: list[Controller] = []
    proxy: DropAfterDataProxy | None = None
    try:
        dovecot.start()
        handler = LmtpDelivery(
            dovecot.lmtp_port, lambda: dovecot.passwords, lambda: introspection.tokens
        )
        context = server_context(str(certificates.cert_file), str(certificates.key_file))
        ports = free_port(), free_port()
        for port, implicit in zip(ports, (True, False), strict=True):
            controllers.append(
                start_submission(
                    handler, context, lambda: dovecot.passwords, port=port, implicit_tls=implicit
                )
            )
        proxy = DropAfterDataProxy(
            upstream_port=ports[0],
            server_context=context,
            client_context=ssl.create_default_context(cafile=str(certificates.ca_file)),
        )
        proxy.start()
        yield MailServers(dovecot, certificates, ports[0], ports[1], proxy, introspection.tokens)
    finally:
        if proxy is not None:
            proxy.stop()
        for controller in controllers:
            controller.stop()
        dovecot.stop()
        introspection.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mail(mail_servers: MailServers) -> MailServers:
    """The servers with every mailbox empty and the original passwords."""
    mail_servers.dovecot.reset(USERS)
    mail_servers.tokens.clear()
    mail_servers.proxy.drops_left = 0
    mail_servers.proxy.dropped = 0
    return mail_servers


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
    connections: Connections
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
            self.connections,
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
    return Outreach(client, app.state.session_factory, app.state.connections, mail)
