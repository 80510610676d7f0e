"""What the mailbox services need besides the database: hosts, discovery, keys and policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from sendwell.config import Settings
from sendwell.kit.errors import InvalidInput
from sendwell.kit.notices import parse_smtp_url, send_notice
from sendwell.kit.tokenbox import TokenBox
from sendwell.mailboxes.expiry import ExpiryRules
from sendwell.providers.base import MailHost, ProviderName, SignIn
from sendwell.providers.certificates import certificate_expiry
from sendwell.providers.discovery import ProviderDiscovery
from sendwell.providers.domain_dns import DomainDns, parse_servers
from sendwell.providers.mail_server import Endpoint, tls_context
from sendwell.providers.registry import ProviderRegistry


@dataclass(frozen=True)
class TokenPolicy:
    """When to refresh, and how long passing failures may last before the user is asked."""

    refresh_ahead: timedelta
    transient_failures_before_reauth: int
    transient_period_before_reauth: timedelta


@dataclass
class ProviderServices:
    registry: ProviderRegistry
    discovery: ProviderDiscovery
    box: TokenBox
    base_url: str
    policy: TokenPolicy
    sandbox: bool = False
    link_lifetime: timedelta = timedelta(minutes=15)
    # What the settings say about the OAuth clients, and how early to warn of an expiry.
    expiry_rules: ExpiryRules = field(default_factory=ExpiryRules)
    # Called as mailer(to, subject, text) to email what a person asked to be sent (an
    # invitation, a delegation request); None without outgoing mail. Notices of a change go
    # with its unit of work instead (`kit.notices`, the notifications feature).
    mailer: Callable[[str, str, str], None] | None = None
    # Reads a mail server's certificate expiry: reader(endpoint, "smtp" or "imap").
    certificate_reader: Callable[[Endpoint, Literal["smtp", "imap"]], datetime | None] | None = None
    # Reads the sending domains' MX and TXT records (mailboxes/domain_health.py).
    domain_dns: DomainDns = field(default_factory=DomainDns)

    def sign_in(self, name: str) -> SignIn:
        """The host's sign-in page and token upkeep; refused for hosts linked by password."""
        host = _known(name)
        if host is not None and not host.has_sign_in_page:
            raise InvalidInput(
                f"{host.label} accounts have no sign-in page: enter their server settings and "
                "password instead.",
                code="server_settings_needed",
            )
        found = self.registry.sign_in.get(host) if host is not None else None
        if found is None:
            raise _not_configured(name)
        return found

    def mail_host(self, name: str) -> MailHost:
        """The host that sends and reads a mailbox's mail."""
        host = _known(name)
        found = self.registry.mail.get(host) if host is not None else None
        if found is None:
            raise _not_configured(name)
        return found

    def linkable(self) -> list[ProviderName]:
        """The hosts whose accounts can be linked on this server."""
        return list(self.registry.mail)

    def redirect_uri(self, name: str) -> str:
        """One callback path per provider, so a code can never be sent to the wrong host."""
        return f"{self.base_url}/mailboxes/callback/{name}"


def provider_label(name: str) -> str:
    """A host's name as users read it; an unknown name is shown as given."""
    host = _known(name)
    return host.label if host is not None else name


def _known(name: str) -> ProviderName | None:
    try:
        return ProviderName(name)
    except ValueError:
        return None


def _not_configured(name: str) -> InvalidInput:
    label = provider_label(name)
    return InvalidInput(
        f"{label} accounts cannot be linked on this server: its administrator has not "
        f"configured {label} sign-in.",
        code="provider_not_configured",
    )


def build_services(settings: Settings, registry: ProviderRegistry) -> ProviderServices:
    nameservers, dns_port = parse_servers(settings.dns_servers)
    return ProviderServices(
        registry=registry,
        discovery=ProviderDiscovery(
            nameservers=nameservers,
            port=dns_port,
            sandbox=settings.sandbox,
            timeout_seconds=settings.dns_timeout_seconds,
        ),
        domain_dns=DomainDns(
            nameservers=nameservers, port=dns_port, timeout_seconds=settings.dns_timeout_seconds
        ),
        box=TokenBox(settings.token_key_list),
        base_url=settings.base_url,
        sandbox=settings.sandbox,
        expiry_rules=ExpiryRules.from_settings(
            google_publishing_status=settings.google_publishing_status,
            microsoft_client_secret_expires=settings.microsoft_client_secret_expires,
            expiry_warning_days=settings.expiry_warning_days,
            testing_warning_days=settings.testing_warning_days,
        ),
        mailer=partial(send_notice, parse_smtp_url(settings.smtp_url), timeout=10.0)
        if settings.smtp_url
        else None,
        certificate_reader=partial(
            certificate_expiry,
            context=tls_context(settings.mail_server_ca_file),
            timeout=settings.provider_timeout_seconds,
            outbound=settings.outbound_policy,
        ),
        policy=TokenPolicy(
            refresh_ahead=timedelta(minutes=5),
            transient_failures_before_reauth=settings.transient_failures_before_reauth,
            transient_period_before_reauth=timedelta(
                minutes=settings.transient_minutes_before_reauth
            ),
        ),
    )
