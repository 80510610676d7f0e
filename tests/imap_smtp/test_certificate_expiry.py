"""An IMAP/SMTP account's expected expiry is its servers' certificate, read over TLS."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.kit.clock import utcnow
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import MailServer
from tests.imap_smtp.conftest import MailServers, link_other


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.submission_servers("aiosmtpd")
def test_a_certificate_two_days_from_expiry_is_warned_about(
    client: TestClient, mail: MailServers, db: Session, security: str
) -> None:
    starttls = security == "starttls"
    form = mail.form(
        smtp_port=str(mail.submission_port if starttls else mail.smtps_port),
        smtp_security=security,
        imap_port=str(mail.dovecot.imap_port if starttls else mail.dovecot.imaps_port),
        imap_security=security,
    )
    assert link_other(client, form).status_code == 303
    check_connections(client.app.state.session_factory, client.app.state.services)  # type: ignore[attr-defined]
    server = db.scalars(select(MailServer)).one()
    # The test CA's certificates live two days: within the 7-day warning time.
    assert server.certificate_expires_at is not None
    assert utcnow() < server.certificate_expires_at < utcnow() + timedelta(days=2, hours=1)
    page = html.unescape(client.get("/messaging/campaigns").text)
    assert "ada@example.com will disconnect on" in page
    assert "renew its certificate" in page
    assert 'action="/mailboxes/1/reauthenticate"' not in page
