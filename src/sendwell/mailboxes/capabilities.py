"""What this server can do, in words: which hosts are live, the sandbox, notification email."""

from __future__ import annotations

from dataclasses import dataclass

from sendwell.config import Settings
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.providers.base import ProviderName

SMTP_EXAMPLE = (
    "SENDWELL_SMTP_URL=smtp://user:password@smtp.example.com:587?from=sendwell@example.com"
)
CLIENT_VARIABLES = {
    ProviderName.GOOGLE: "SENDWELL_GOOGLE_CLIENT_ID and SENDWELL_GOOGLE_CLIENT_SECRET",
    ProviderName.MICROSOFT: "SENDWELL_MICROSOFT_CLIENT_ID and SENDWELL_MICROSOFT_CLIENT_SECRET",
}


@dataclass(frozen=True)
class Capability:
    """One line of the server's status: what, whether it is on, what it means, how to change it."""

    name: str
    state: str  # "live", "demo" or "off"
    summary: str
    change: str

    @property
    def state_label(self) -> str:
        return {"live": "Live", "demo": "Demo", "off": "Off"}[self.state]


def server_capabilities(settings: Settings, services: ProviderServices) -> list[Capability]:
    """The mail hosts accounts can be linked with, the sandbox and notification email."""
    found = [_oauth_host(settings, services, host) for host in CLIENT_VARIABLES]
    found.append(
        Capability(
            ProviderName.IMAP.choice,
            "live",
            "Any mail host that offers IMAP and SMTP, linked with its server settings and a "
            "password or app password.",
            "",
        )
    )
    if settings.sandbox:
        found.append(
            Capability(
                "Sandbox",
                "demo",
                "A demo: this server emulates Google and Microsoft for addresses at "
                "*.gmail.test and *.outlook.test. No real mailbox is reached and nothing "
                "reaches real people.",
                "Turn it off with SENDWELL_SANDBOX=0 (make run turns it on).",
            )
        )
    found.append(_notifications(settings))
    return found


def _oauth_host(settings: Settings, services: ProviderServices, host: ProviderName) -> Capability:
    variables = CLIENT_VARIABLES[host]
    if settings.sandbox:
        return Capability(
            host.choice,
            "demo",
            "Emulated by the sandbox: only its made-up addresses can be linked.",
            f"For real accounts set {variables} and SENDWELL_SANDBOX=0 (see docs/providers.md).",
        )
    if host in services.registry.sign_in:
        return Capability(host.choice, "live", f"{host.label} accounts can be linked.", "")
    return Capability(
        host.choice,
        "off",
        f"{host.label} accounts cannot be linked: no OAuth client is configured.",
        f"Set {variables} (see docs/providers.md).",
    )


def _notifications(settings: Settings) -> Capability:
    if settings.smtp_url:
        return Capability(
            "Notification email",
            "live",
            "Owners are emailed when an account needs reauthentication or is about to "
            "expire, and invitations are sent by email.",
            "",
        )
    return Capability(
        "Notification email",
        "off",
        "Nobody is emailed when an account needs reauthentication or is about to expire "
        "(the banner in Messaging still shows it), and invitations show a link to pass on.",
        f"Set {SMTP_EXAMPLE}",
    )
