"""The IMAP/SMTP provider against the real servers: each server answer as our error type."""

from __future__ import annotations

import re
import smtplib
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from sendwell.metrics.process import PROCESS_REGISTRY
from sendwell.providers.base import SentProbe
from sendwell.providers.errors import AuthRevoked, ProviderError, RecipientRejected, Transient
from sendwell.providers.imap_smtp import ImapSmtpProvider
from sendwell.providers.mail_server import AuthMethod, Endpoint, Security, ServerLogin
from tests.conftest import LOOPBACK
from tests.imap_smtp.conftest import SENDER, SENDER_PASSWORD, MailServers
from tests.imap_smtp.dovecot import free_port
from tests.imap_smtp.submission import LmtpDelivery, server_context, start_submission


@pytest.fixture
def provider(mail: MailServers) -> ImapSmtpProvider:
    return ImapSmtpProvider(
        timeout_seconds=5, ca_file=str(mail.certificates.ca_file), outbound=LOOPBACK
    )


def credential(
    mail: MailServers, *, password: str = SENDER_PASSWORD, smtp_port: int = 0
) -> ServerLogin:
    return ServerLogin(
        email=SENDER,
        username=SENDER,
        secret=password,
        auth=AuthMethod.PASSWORD,
        smtp=Endpoint("127.0.0.1", smtp_port or mail.smtps_port, Security.TLS),
        imap=Endpoint("127.0.0.1", mail.dovecot.imaps_port, Security.TLS),
    )


def probe(tag: str) -> SentProbe:
    since = datetime.now(UTC) - timedelta(minutes=1)
    return SentProbe(tag=tag, recipient="ann@example.com", subject="", since=since)


def message(to: str, tag: str) -> bytes:
    built = EmailMessage()
    built["From"] = SENDER
    built["To"] = to
    built["Subject"] = "Hello"
    built["Message-ID"] = make_msgid(domain="example.com")
    built["X-Sendwell-Send-Id"] = tag
    built.set_content("Hello.\n.A line that starts with a dot.\n")
    return built.as_bytes()


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_send_files_one_copy_in_sent_and_find_sent_finds_it(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    token = credential(mail)
    sent = provider.send(token, message("ann@example.com", "tag-1"), tag="tag-1")
    assert sent.message_id_header.endswith("@example.com>")
    assert sent.thread_id == sent.message_id_header
    received = mail.messages("ann@example.com")
    assert len(received) == 1
    assert ".A line that starts with a dot." in received[0].get_payload()
    assert len(mail.messages(SENDER, "Sent")) == 1
    [found] = provider.find_sent(token, probe("tag-1"))
    assert found.message_id_header == sent.message_id_header
    assert provider.find_sent(token, probe("no-such-tag")) == []


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_a_follow_up_keeps_the_threads_name(provider: ImapSmtpProvider, mail: MailServers) -> None:
    sent = provider.send(
        credential(mail), message("ann@example.com", "tag-2"), tag="tag-2", thread_id="<root@x>"
    )
    assert sent.thread_id == "<root@x>"


@pytest.mark.submission_servers("postfix", "aiosmtpd")
@pytest.mark.parametrize(
    ("recipient", "kind", "code"),
    [
        ("nobody@example.com", RecipientRejected, "smtp_550"),
        ("busy@example.com", Transient, "smtp_451"),
    ],
)
def test_recipient_answers(
    provider: ImapSmtpProvider,
    mail: MailServers,
    recipient: str,
    kind: type[ProviderError],
    code: str,
) -> None:
    with pytest.raises(kind) as raised:
        provider.send(credential(mail), message(recipient, "t"), tag="t")
    assert raised.value.code == code
    assert recipient in raised.value.message
    assert mail.messages(SENDER, "Sent") == []


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_a_changed_password_is_auth_revoked_on_both_servers(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    token = credential(mail, password="an old password")
    with pytest.raises(AuthRevoked) as on_smtp:
        provider.send(token, message("ann@example.com", "t"), tag="t")
    assert on_smtp.value.code == "smtp_535"
    with pytest.raises(AuthRevoked) as on_imap:
        provider.list_inbound(token, None)
    assert on_imap.value.code == "imap_authenticationfailed"
    assert "[AUTHENTICATIONFAILED]" in on_imap.value.message


@pytest.mark.submission_servers("postfix")
def test_a_refused_password_is_tried_once(provider: ImapSmtpProvider, mail: MailServers) -> None:
    """Hosts count each refused sign-in toward locking the account or banning our address."""
    postfix = mail.submission.postfix
    assert postfix is not None
    mark = postfix.log_mark()
    with pytest.raises(AuthRevoked):
        provider.send(credential(mail, password="wrong"), message("ann@example.com", "t"), tag="t")
    sessions = postfix.sessions_after(mark)
    assert len(sessions) == 1
    assert re.search(r" auth=0/1 ", sessions[0]), sessions[0]


@pytest.mark.submission_servers("aiosmtpd")
def test_a_server_that_takes_no_password_says_what_it_offers(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    """As a host that has turned password sign-in off and takes only OAuth tokens."""
    handler = LmtpDelivery(mail.dovecot.lmtp_port, lambda: mail.dovecot.passwords, dict)
    context = server_context(str(mail.certificates.cert_file), str(mail.certificates.key_file))
    port = free_port()
    server = start_submission(
        handler,
        context,
        lambda: mail.dovecot.passwords,
        port=port,
        implicit_tls=True,
        withheld=("PLAIN", "LOGIN"),
    )
    try:
        with pytest.raises(ProviderError) as raised:
            provider.send(
                credential(mail, smtp_port=port), message("ann@example.com", "t"), tag="t"
            )
    finally:
        server.stop()
    assert raised.value.code == "no_password_auth"
    assert f"127.0.0.1:{port} does not accept a password sign-in (it offers XOAUTH2)" in (
        raised.value.message
    )
    assert mail.messages("ann@example.com") == []


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_the_starttls_port_takes_no_password_before_starttls(mail: MailServers) -> None:
    """What makes the STARTTLS setting safe: no password crosses the wire unencrypted."""
    plain = b64encode(f"\0{SENDER}\0{SENDER_PASSWORD}".encode()).decode()
    with smtplib.SMTP("127.0.0.1", mail.submission_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, text = smtp.docmd("AUTH", f"PLAIN {plain}")
    assert code == 530
    assert b"STARTTLS" in text


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_server_conversations_are_timed_and_refusals_counted(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    def sample(name: str, **labels: str) -> float:
        return PROCESS_REGISTRY.get_sample_value(name, {"provider": "imap", **labels}) or 0.0

    timed = sample("sendwell_provider_request_seconds_count")
    refused = sample("sendwell_provider_errors_total", type="smtp_535")
    provider.send(credential(mail), message("ann@example.com", "counted"), tag="counted")
    with pytest.raises(AuthRevoked):
        provider.send(credential(mail, password="wrong"), message("ann@example.com", "t"), tag="t")
    # The good send: SMTP, then IMAP for the copy in Sent; the refused one: SMTP only.
    assert sample("sendwell_provider_request_seconds_count") == timed + 3
    assert sample("sendwell_provider_errors_total", type="smtp_535") == refused + 1


def test_an_unreachable_server_is_transient(provider: ImapSmtpProvider, mail: MailServers) -> None:
    with pytest.raises(Transient) as raised:
        provider.send(
            credential(mail, smtp_port=free_port()), message("ann@example.com", "t"), tag="t"
        )
    assert raised.value.code == "connect"


def test_inbound_reads_since_the_cursor_and_restarts_on_a_new_uidvalidity(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    token = credential(mail)
    start = provider.list_inbound(token, None)
    assert start.messages == []
    for number in (1, 2):
        note = EmailMessage()
        note["From"] = "Ann <ann@example.com>"
        note["Subject"] = f"=?utf-8?q?R=C3=A9ponse_{number}?="
        note["Message-ID"] = f"<reply-{number}@example.com>"
        note["In-Reply-To"] = "<ours@example.com>"
        note["References"] = "<root@example.com> <ours@example.com>"
        note.set_content("Yes.")
        mail.write_into(SENDER, note)
    page = provider.list_inbound(token, start.cursor)
    assert [m.message_id_header for m in page.messages] == [
        "<reply-1@example.com>",
        "<reply-2@example.com>",
    ]
    first = page.messages[0]
    assert (first.from_address, first.subject) == ("ann@example.com", "Réponse 1")
    assert (first.in_reply_to, first.thread_id) == ("<ours@example.com>", "<root@example.com>")
    assert provider.list_inbound(token, page.cursor).messages == []
    validity, _, _last = page.cursor.partition(":")
    renumbered = provider.list_inbound(token, f"{int(validity) + 1}:1")
    assert len(renumbered.messages) == 2
    assert renumbered.cursor == page.cursor


@pytest.mark.submission_servers("postfix", "aiosmtpd")
def test_xoauth2_signs_in_to_both_servers_until_the_token_is_withdrawn(
    provider: ImapSmtpProvider, mail: MailServers
) -> None:
    mail.tokens["token-1"] = SENDER
    login = ServerLogin(
        email=SENDER,
        username=SENDER,
        secret="token-1",
        auth=AuthMethod.XOAUTH2,
        smtp=Endpoint("127.0.0.1", mail.submission_port, Security.STARTTLS),
        imap=Endpoint("127.0.0.1", mail.dovecot.imaps_port, Security.TLS),
    )
    provider.check_connection(login)
    provider.send(login, message("ann@example.com", "x-1"), tag="x-1")
    assert len(mail.messages("ann@example.com")) == 1
    assert provider.find_sent(login, probe("x-1"))
    del mail.tokens["token-1"]
    with pytest.raises(AuthRevoked) as on_smtp:
        provider.send(login, message("ann@example.com", "x-2"), tag="x-2")
    assert on_smtp.value.code == "smtp_535"
    with pytest.raises(AuthRevoked):
        provider.list_inbound(login, None)
