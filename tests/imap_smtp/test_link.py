"""Linking an "Other" (IMAP/SMTP) account: the form, the connection test, the stored password."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.kit.tokenbox import TokenBox
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import reencrypt_all
from sendwell.models import Mailbox, MailboxStatus, MailServer
from sendwell.providers.base import ProviderName
from sendwell.providers.imap_smtp import ImapSmtpProvider
from tests.conftest import LOOPBACK, csrf_from
from tests.imap_smtp.conftest import SENDER, SENDER_PASSWORD, MailServers, link_other
from tests.imap_smtp.dovecot import free_port
from tests.mailboxes.test_api import api_token, bearer


def _connections(client: TestClient) -> ProviderServices:
    services: ProviderServices = client.app.state.services  # type: ignore[attr-defined]
    return services


def test_an_unknown_host_offers_other(client: TestClient, mail: MailServers) -> None:
    page = client.post(
        "/mailboxes/link",
        data={
            "csrftoken": csrf_from(client.get("/messaging/settings").text),
            "own": "on",
            "email": SENDER,
        },
    )
    assert page.status_code == 200
    assert "Which service hosts ada@example.com?" in page.text
    assert 'value="imap"' in page.text
    assert "Other (any host with IMAP and SMTP)" in page.text


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_other_account_links_after_both_servers_accept(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    response = link_other(client, mail.form())
    assert response.status_code == 303, response.text
    settings_tab = client.get(response.headers["location"]).text
    assert "ada@example.com is connected." in settings_tab
    mailbox = db.scalars(select(Mailbox)).one()
    assert (mailbox.provider, mailbox.email, mailbox.status) == (
        "imap",
        SENDER,
        MailboxStatus.CONNECTED,
    )
    server = db.get(MailServer, mailbox.id)
    assert server is not None
    assert (server.smtp_port, server.imap_port) == (mail.smtps_port, mail.dovecot.imaps_port)
    assert server.secret is not None
    assert SENDER_PASSWORD not in server.secret
    assert _connections(client).box.open(server.secret) == SENDER_PASSWORD
    details = client.get(f"/mailboxes/{mailbox.id}").text
    assert f"127.0.0.1:{mail.smtps_port} · SSL/TLS" in details
    assert SENDER_PASSWORD not in details


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_starttls_on_both_servers_links_too(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    form = mail.form(
        smtp_port=str(mail.submission_port),
        smtp_security="starttls",
        imap_port=str(mail.dovecot.imap_port),
        imap_security="starttls",
    )
    response = link_other(client, form)
    assert response.status_code == 303, response.text
    server = db.scalars(select(MailServer)).one()
    assert (server.smtp_security, server.imap_security) == ("starttls", "starttls")


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_a_wrong_password_shows_the_servers_answer_and_saves_nothing(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    response = link_other(client, mail.form(password="not the password"))
    assert response.status_code == 422
    assert "refused the user name or password (535" in response.text
    assert "Nothing was saved." in response.text
    assert 'value="not the password"' not in response.text
    assert db.scalars(select(Mailbox)).all() == []


def test_a_closed_imap_port_is_reported_in_words(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    closed = free_port()
    response = link_other(client, mail.form(imap_port=str(closed)))
    assert response.status_code == 422
    assert f"The IMAP server 127.0.0.1:{closed} refused the connection." in response.text
    assert db.scalars(select(Mailbox)).all() == []


def test_an_untrusted_certificate_is_refused(
    client: TestClient, mail: MailServers, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SENDWELL_MAIL_SERVER_CA_FILE the test CA is not trusted: nothing is linked."""
    untrusting = ImapSmtpProvider(timeout_seconds=5, outbound=LOOPBACK)
    monkeypatch.setitem(_connections(client).registry.mail, ProviderName.IMAP, untrusting)
    response = link_other(client, mail.form())
    assert response.status_code == 422
    assert "presented a certificate that cannot be trusted" in response.text
    assert db.scalars(select(Mailbox)).all() == []


def test_keys_rotate_reencrypts_the_password(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    assert link_other(client, mail.form()).status_code == 303
    old_key = _connections(client).box
    server = db.scalars(select(MailServer)).one()
    before = server.secret
    new_key = Fernet.generate_key().decode()
    settings_keys = client.app.state.settings.token_key_list  # type: ignore[attr-defined]
    rotated_box = TokenBox([new_key, *settings_keys])
    assert reencrypt_all(db, rotated_box) >= 1
    db.flush()
    assert server.secret is not None
    assert server.secret != before
    assert TokenBox([new_key]).open(server.secret) == SENDER_PASSWORD
    assert old_key.open(before or "") == SENDER_PASSWORD


def test_disconnect_deletes_the_stored_password(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    assert link_other(client, mail.form()).status_code == 303
    mailbox = db.scalars(select(Mailbox)).one()
    page = client.get(f"/mailboxes/{mailbox.id}")
    response = client.post(
        f"/mailboxes/{mailbox.id}/disconnect",
        data={"csrftoken": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    db.expire_all()
    server = db.get(MailServer, mailbox.id)
    assert server is not None
    assert server.secret is None
    assert mailbox.status is MailboxStatus.DISCONNECTED
    relinked = link_other(client, mail.form())
    assert "ada@example.com is reconnected." in client.get(relinked.headers["location"]).text
    db.expire_all()
    assert db.scalars(select(Mailbox.id)).all() == [mailbox.id]


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_the_api_links_after_the_same_test(
    client: TestClient, mail: MailServers, db: Session
) -> None:
    headers = bearer(api_token(db, "ada@example.com"))
    body = {
        "email": SENDER,
        "smtp_host": "127.0.0.1",
        "smtp_port": mail.smtps_port,
        "imap_host": "127.0.0.1",
        "imap_port": mail.dovecot.imaps_port,
        "password": "wrong",
    }
    refused = client.post("/api/v1/mailboxes/link-server", json=body, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "connection_test_failed"
    assert "535" in refused.json()["error"]["message"]
    linked = client.post(
        "/api/v1/mailboxes/link-server",
        json={**body, "password": SENDER_PASSWORD},
        headers=headers,
    )
    assert linked.status_code == 200, linked.text
    assert (linked.json()["provider"], linked.json()["status"]) == ("imap", "connected")
    oauth_only = client.post(
        "/api/v1/mailboxes/link", json={"email": SENDER, "provider": "imap"}, headers=headers
    )
    assert oauth_only.status_code == 422
    assert oauth_only.json()["error"]["code"] == "server_settings_needed"
