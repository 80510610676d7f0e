"""Which mail hosts this server can link, and how, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from sendwell.config import Settings
from sendwell.providers.base import MailHost, ProviderName, SignIn
from sendwell.providers.google import GoogleEndpoints, GoogleProvider
from sendwell.providers.imap_smtp import ImapSmtpProvider
from sendwell.providers.microsoft import MicrosoftEndpoints, MicrosoftProvider

SANDBOX_CLIENT_ID = "sendwell-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - registered with the emulator only

OAuthHost = GoogleProvider | MicrosoftProvider


@dataclass(frozen=True)
class ProviderRegistry:
    """The configured hosts: each one's mail, and the sign-in page of those that have one."""

    sign_in: dict[ProviderName, SignIn]
    mail: dict[ProviderName, MailHost]


def make_http_client(settings: Settings) -> httpx.Client:
    """One pooled client for every provider call, with the configured timeout."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.provider_timeout_seconds), follow_redirects=False
    )


def build_registry(settings: Settings, http: httpx.Client) -> ProviderRegistry:
    """The sandbox's emulated hosts when it is on; otherwise every host with credentials.

    IMAP/SMTP needs no credentials of the server's own, so it is always offered.
    """
    oauth = _oauth_hosts(settings, http)
    mail: dict[ProviderName, MailHost] = dict(oauth)
    mail[ProviderName.IMAP] = ImapSmtpProvider(
        timeout_seconds=settings.provider_timeout_seconds,
        ca_file=settings.mail_server_ca_file,
        outbound=settings.outbound_policy,
    )
    return ProviderRegistry(sign_in=dict(oauth), mail=mail)


def _oauth_hosts(settings: Settings, http: httpx.Client) -> dict[ProviderName, OAuthHost]:
    if settings.sandbox:
        base = settings.sandbox_base_url
        return {
            ProviderName.GOOGLE: GoogleProvider(
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                endpoints=GoogleEndpoints.sandbox(base),
                http=http,
            ),
            ProviderName.MICROSOFT: MicrosoftProvider(
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                endpoints=MicrosoftEndpoints.sandbox(base, settings.microsoft_tenant),
                http=http,
                min_send_interval=timedelta(seconds=settings.microsoft_min_send_seconds),
                sent_copy_lag=timedelta(seconds=settings.microsoft_sent_copy_lag_seconds),
            ),
        }
    registry: dict[ProviderName, OAuthHost] = {}
    if settings.google_client_id:
        registry[ProviderName.GOOGLE] = GoogleProvider(
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            endpoints=GoogleEndpoints(),
            http=http,
        )
    if settings.microsoft_client_id:
        registry[ProviderName.MICROSOFT] = MicrosoftProvider(
            client_id=settings.microsoft_client_id,
            client_secret=settings.microsoft_client_secret,
            endpoints=MicrosoftEndpoints(tenant=settings.microsoft_tenant),
            http=http,
            min_send_interval=timedelta(seconds=settings.microsoft_min_send_seconds),
            sent_copy_lag=timedelta(seconds=settings.microsoft_sent_copy_lag_seconds),
        )
    return registry
