"""Credentials: each host takes only its own kind, and no credential shows its secret."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from sendwell.kit.logging import get_logger
from sendwell.providers.base import HOSTS, MailHost, ProviderName, SentProbe
from sendwell.providers.credentials import AccessToken, Credential
from sendwell.providers.errors import ProviderError
from sendwell.providers.google import GoogleEndpoints, GoogleProvider
from sendwell.providers.imap_smtp import ImapSmtpProvider
from sendwell.providers.mail_server import AuthMethod, Endpoint, Security, ServerLogin
from sendwell.providers.microsoft import MicrosoftEndpoints, MicrosoftProvider

PASSWORD = "correct horse battery staple"
BEARER = "ya29.a-bearer-token"
LOGIN = ServerLogin(
    email="ann@example.com",
    username="ann",
    secret=PASSWORD,
    auth=AuthMethod.PASSWORD,
    smtp=Endpoint("smtp.example.com", 465, Security.TLS),
    imap=Endpoint("imap.example.com", 993, Security.TLS),
)
PROBE = SentProbe(tag="t-1", recipient="bob@example.com", subject="Hi", since=datetime.now(UTC))


def test_no_credential_shows_its_secret_in_repr_or_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = AccessToken(BEARER)
    assert PASSWORD not in repr(LOGIN)
    assert PASSWORD not in f"{LOGIN}"
    assert "ann@example.com" in repr(LOGIN)
    assert BEARER not in repr(token)
    assert BEARER not in f"{token}"
    with caplog.at_level(logging.INFO):
        # Keys the log redacts by name (password, token, secret) are avoided on purpose.
        get_logger(__name__).info("credential_used", account=LOGIN, held=token)
    assert "credential_used" in caplog.text
    assert "smtp.example.com" in caplog.text
    assert PASSWORD not in caplog.text
    assert BEARER not in caplog.text


@pytest.fixture
def requests() -> list[httpx.Request]:
    return []


@pytest.fixture
def http(requests: list[httpx.Request]) -> httpx.Client:
    """A client that records what would have reached the host, and answers nothing useful."""

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    return httpx.Client(transport=httpx.MockTransport(record))


def oauth_hosts(http: httpx.Client) -> list[MailHost]:
    base = "http://127.0.0.1:9/sandbox"
    return [
        GoogleProvider(
            client_id="c", client_secret="s", endpoints=GoogleEndpoints.sandbox(base), http=http
        ),
        MicrosoftProvider(
            client_id="c", client_secret="s", endpoints=MicrosoftEndpoints.sandbox(base), http=http
        ),
    ]


def calls(host: MailHost, credential: Credential) -> list[Callable[[], object]]:
    return [
        lambda: host.send(credential, b"Subject: Hi\r\n\r\nHello", tag="t-1"),
        lambda: host.find_sent(credential, PROBE),
        lambda: host.list_inbound(credential, None),
        lambda: host.probe(credential),
    ]


def test_an_oauth_host_refuses_a_server_login_before_calling_out(
    http: httpx.Client, requests: list[httpx.Request]
) -> None:
    for host in oauth_hosts(http):
        for call in calls(host, LOGIN):
            with pytest.raises(ProviderError) as refused:
                call()
            assert refused.value.code == "wrong_credential"
            assert "OAuth access token" in refused.value.message
            assert host.name.label in refused.value.message
    assert requests == []


def test_an_imap_smtp_host_refuses_an_access_token_before_connecting() -> None:
    host = ImapSmtpProvider(timeout_seconds=1)
    for call in calls(host, AccessToken(BEARER)):
        with pytest.raises(ProviderError) as refused:
            call()
        assert refused.value.code == "wrong_credential"
        assert refused.value.message == (
            "IMAP/SMTP accounts are reached with their server settings and password, not an "
            "OAuth access token."
        )


def test_every_host_declares_its_name_and_how_it_links() -> None:
    assert set(HOSTS) == set(ProviderName)
    assert [name for name in ProviderName if not name.has_sign_in_page] == [ProviderName.IMAP]
    assert ProviderName.MICROSOFT.label == "Microsoft"
