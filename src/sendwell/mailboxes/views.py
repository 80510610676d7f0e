"""What the Settings tab and an account's Email Settings page show, each as the view model its
template renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.campaigns import service as campaigns
from sendwell.config import Settings
from sendwell.delegations import service as delegations
from sendwell.delegations.service import DelegationView
from sendwell.kit.clock import utcnow
from sendwell.mailboxes import limits, lookahead, server_accounts, service
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.capabilities import Capability, server_capabilities
from sendwell.mailboxes.expiry import ExpiryRules
from sendwell.mailboxes.limits import GAP_GUIDANCE_SECONDS, AccountLimits
from sendwell.mailboxes.lookahead import Expiry
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.server_accounts import ServerSettingsShown
from sendwell.models import Campaign, DomainCheck, Mailbox, MailboxEvent, MailboxStatus, User
from sendwell.providers.mail_server import SECURITY_LABELS
from sendwell.teams.service import teammates


@dataclass(frozen=True)
class SettingsTab:
    """`messaging/settings.html`: the user's accounts, what sharing asks of them and of
    others, and the campaigns a broken connection paused."""

    asked_of_me: list[DelegationView]
    asked_by_me: list[DelegationView]
    teammates: list[User]
    active: list[Mailbox]
    disconnected: list[Mailbox]
    # For each connected account, the campaigns its disconnect or reauthentication paused.
    paused: dict[int, list[Campaign]]
    expiries: dict[int, Expiry]
    now: datetime
    capabilities: list[Capability]
    tab: str = field(default="settings", init=False)


def settings_tab(
    db: Session, user: User, services: ProviderServices, settings: Settings
) -> SettingsTab:
    mailboxes = service.visible_mailboxes(db, user)
    shared = delegations.views_for(db, user)
    return SettingsTab(
        asked_of_me=[v for v in shared if v.viewer == "owner"],
        asked_by_me=[v for v in shared if v.viewer == "delegate"],
        teammates=teammates(db, user),
        active=[m for m in mailboxes if m.status is not MailboxStatus.DISCONNECTED],
        disconnected=[m for m in mailboxes if m.status is MailboxStatus.DISCONNECTED],
        paused={
            m.id: campaigns.paused_by_mailbox(db, user, m.id)
            for m in mailboxes
            if m.status is MailboxStatus.CONNECTED
        },
        expiries=lookahead.expiries_for(db, services.expiry_rules, mailboxes),
        now=utcnow(),
        capabilities=server_capabilities(settings, services),
    )


@dataclass(frozen=True)
class EmailSettingsPage:
    """`mailboxes/detail.html`: an account's limits, sending settings, servers, domain health
    and history, with the form as posted when a save was refused."""

    mailbox: Mailbox
    server: ServerSettingsShown | None
    events: list[MailboxEvent]
    label: str
    limits: AccountLimits
    form: dict[str, str]
    error: str
    domain: DomainCheck | None
    selectors: str
    domain_error: str
    security_labels: dict[str, str] = field(
        default_factory=lambda: {k.value: label for k, label in SECURITY_LABELS.items()},
        init=False,
    )
    gap_guidance: int = field(default=GAP_GUIDANCE_SECONDS, init=False)


def email_settings_page(
    db: Session,
    user: User,
    mailbox_id: int,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    selectors: str | None = None,
    domain_error: str = "",
) -> EmailSettingsPage:
    """`selectors` as typed when saving them was refused, else the saved ones."""
    mailbox = service.get_mailbox(db, user, mailbox_id)
    domain = repo.get_domain_check(db, mailbox.id)
    return EmailSettingsPage(
        mailbox=mailbox,
        server=server_accounts.settings_of(db, mailbox),
        events=service.mailbox_history(db, mailbox),
        label=mailbox.provider.label,
        limits=limits.limits_for(mailbox.provider, mailbox.email),
        form=form or {},
        error=error,
        domain=domain,
        selectors=selectors
        if selectors is not None
        else (domain.selectors.replace(",", ", ") if domain else ""),
        domain_error=domain_error,
    )


@dataclass(frozen=True)
class BannerMailbox:
    """What a banner shows of an account, read while the request's session is open: an
    error page is drawn after that session was rolled back and closed."""

    id: int
    email: str
    status_reason: str
    status_code: str


@dataclass(frozen=True)
class BrokenBanner:
    mailbox: BannerMailbox
    paused_campaigns: int


@dataclass(frozen=True)
class ExpiryBanner:
    mailbox: BannerMailbox
    expiry: Expiry | None


def _banner_mailbox(mailbox: Mailbox) -> BannerMailbox:
    return BannerMailbox(mailbox.id, mailbox.email, mailbox.status_reason, mailbox.status_code)


def banners(
    db: Session, rules: ExpiryRules, user: User
) -> tuple[list[BrokenBanner], list[ExpiryBanner]]:
    """The Messaging banners: the user's accounts that need reauthentication, and those
    whose expected expiry is within its warning time."""
    broken = [
        BrokenBanner(_banner_mailbox(a.mailbox), a.paused_campaigns)
        for a in service.accounts_needing_attention(db, user)
    ]
    ahead = [
        ExpiryBanner(_banner_mailbox(w.mailbox), w.expiry)
        for w in lookahead.due_warnings(db, rules, user)
    ]
    return broken, ahead
