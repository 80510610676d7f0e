"""Hosts a user names (IMAP/SMTP servers, webhooks) go through one outbound policy.

Loopback, private, link-local and special addresses — also in the IPv6 forms that carry an
IPv4 address — are refused after resolution and on every connection, before anything is sent;
the administrator's allow-setting opens named hosts or ranges; whatever answers a connection is
never repeated back to the user.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.kit.outbound import DestinationRefused, OutboundPolicy, is_public
from sendwell.models import Mailbox, MailboxStatus, User
from tests.conftest import (
    LOOPBACK_ALLOWED,
    STRONG_PASSWORD,
    Database,
    create_first_account,
    make_settings,
)
from tests.mailboxes.test_api import api_token, bearer

BANNER = b'INFO {"server_id":"NATS-INTERNAL-7Q","version":"2.10.1"}\r\n'
REFUSED_ADDRESSES = [
    "127.0.0.1",
    "0.0.0.0",  # noqa: S104 - an address refused, not bound
    "10.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::",
    "2001:db8::1",
    "ff02::1",
]


class Listener:
    """A TCP server on loopback that greets every connection with a banner and counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(BANNER)
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    conn.recv(1024)

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=2)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _client(database: Database, engine: Engine, allow: str) -> TestClient:
    settings = make_settings(database.url, outbound_allow=allow, provider_timeout_seconds=2)
    return TestClient(create_app(settings, engine=engine))


def _link(client: TestClient, db: Session, host: str, port: int) -> dict[str, str]:
    body = {
        "email": "ada@example.com",
        "smtp_host": host,
        "smtp_port": str(port),
        "smtp_security": "starttls",
        "imap_host": host,
        "imap_port": str(port),
        "imap_security": "starttls",
        "password": "secret",
    }
    headers = bearer(api_token(db, "ada@example.com"))
    response = client.post("/api/v1/mailboxes/link-server", json=body, headers=headers)
    assert response.status_code == 422, response.text
    error: dict[str, str] = response.json()["error"]
    return error


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


INTERNAL_HOSTS = ["127.0.0.1", "localhost", "0.0.0.0", "169.254.169.254"]  # noqa: S104


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_the_imap_smtp_form_refuses_internal_hosts_without_connecting(
    database: Database, engine: Engine, db: Session, listener: Listener, host: str
) -> None:
    with _client(database, engine, "") as client:
        create_first_account(client)
        error = _link(client, db, host, listener.port)
    assert error["code"] == "connection_test_failed"
    assert "loopback, private or reserved address" in error["message"]
    assert "SENDWELL_OUTBOUND_ALLOW" in error["message"]
    assert listener.connections == 0


def test_an_allowed_range_is_reached_and_its_banner_is_not_echoed(
    database: Database, engine: Engine, db: Session, listener: Listener
) -> None:
    with _client(database, engine, LOOPBACK_ALLOWED) as client:
        create_first_account(client)
        error = _link(client, db, "127.0.0.1", listener.port)
    assert listener.connections == 1
    assert error["code"] == "connection_test_failed"
    assert "did not greet Sendwell as a mail server" in error["message"]
    assert "NATS" not in error["message"]
    assert "server_id" not in error["message"]


def test_every_connection_is_checked_not_only_the_form(listener: Listener) -> None:
    # A name that resolved to a public address when linked may later resolve elsewhere: the
    # check is made again by the connection itself, on the address it then connects to.
    with pytest.raises(DestinationRefused, match="localhost resolves to"):
        OutboundPolicy().connect("localhost", listener.port, 1, what="mail server connections")
    assert listener.connections == 0
    allowed = OutboundPolicy.parse("localhost")
    allowed.connect("localhost", listener.port, 1, what="mail server connections").close()


def test_the_setting_names_hosts_and_ranges_and_refuses_nonsense() -> None:
    policy = OutboundPolicy.parse(" Mail.Corp.Example. , 10.20.0.0/16, ::1 ")
    assert policy.permits("mail.corp.example", ipaddress.ip_address("10.9.9.9"))
    assert policy.permits("other", ipaddress.ip_address("10.20.3.4"))
    assert policy.permits("other", ipaddress.ip_address("::ffff:10.20.3.4"))
    assert not policy.permits("other", ipaddress.ip_address("10.21.0.1"))
    with pytest.raises(ValueError, match="neither a host name nor an address range"):
        OutboundPolicy.parse("mail corp")


def test_linking_tells_nobody_whose_address_is_linked_before_the_servers_accept(
    database: Database, engine: Engine, db: Session, listener: Listener
) -> None:
    with _client(database, engine, LOOPBACK_ALLOWED) as client:
        create_first_account(client)
        admin = db.scalars(select(User)).one()
        db.add(
            Mailbox(
                workspace_id=admin.workspace_id,
                owner_id=admin.id,
                provider="imap",
                subject="linked@example.com",
                email="linked@example.com",
                status=MailboxStatus.CONNECTED,
            )
        )
        member = accounts.create_user(db, email="bob@example.com", password=STRONG_PASSWORD)
        _token, plaintext = accounts.create_api_token(db, member, "bob")
        db.commit()
        answers = []
        for email in ("linked@example.com", "unlinked@example.com"):
            body = {
                "email": email,
                "smtp_host": "127.0.0.1",
                "smtp_port": str(listener.port),
                "imap_host": "127.0.0.1",
                "imap_port": str(listener.port),
                "password": "guess",
            }
            response = client.post(
                "/api/v1/mailboxes/link-server", json=body, headers=bearer(plaintext)
            )
            answers.append((response.status_code, response.json()["error"]["code"]))
    assert answers[0] == answers[1] == (422, "connection_test_failed")
