"""When a mailbox connection is expected to end, why, and the one action that prevents it.

Pure computation from stored facts (when the grant was given and last used, the settings, a
server certificate's notAfter); `lookahead.py` gathers the facts and acts on the answer.
Each rule follows the host's documentation, cited in docs/providers.md ("Expected expiry").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sendwell.providers.base import ProviderName

GOOGLE_TESTING_LIFETIME = timedelta(days=7)
# Google: "has not been used for six months"; taken as 183 days, the longest six months.
GOOGLE_UNUSED_LIFETIME = timedelta(days=183)
MICROSOFT_UNUSED_LIFETIME = timedelta(days=90)
# An idle token is refreshed this long before it would lapse (and always before any warning).
KEEP_ALIVE_AHEAD = timedelta(days=30)


class ExpiryReason(enum.StrEnum):
    GOOGLE_TESTING_APP = "google_testing_app"
    GOOGLE_UNUSED = "google_unused"
    MICROSOFT_UNUSED = "microsoft_unused"
    MICROSOFT_CLIENT_SECRET = "microsoft_client_secret"  # noqa: S105 - a reason, not a secret
    SERVER_CERTIFICATE = "server_certificate"


KEPT_ALIVE = {ExpiryReason.GOOGLE_UNUSED, ExpiryReason.MICROSOFT_UNUSED}
WORKSPACE_WIDE = {ExpiryReason.MICROSOFT_CLIENT_SECRET}


@dataclass(frozen=True)
class ExpiryRules:
    """What the server's settings say about the OAuth clients, and how early to warn."""

    google_testing: bool = False
    microsoft_secret_expires_at: datetime | None = None
    warning_lead: timedelta = timedelta(days=7)
    testing_warning_lead: timedelta = timedelta(days=2)

    @classmethod
    def from_settings(
        cls,
        *,
        google_publishing_status: str,
        microsoft_client_secret_expires: date | None,
        expiry_warning_days: float,
        testing_warning_days: float,
    ) -> ExpiryRules:
        secret_end = (
            datetime.combine(microsoft_client_secret_expires, time.min, tzinfo=UTC)
            if microsoft_client_secret_expires
            else None
        )
        return cls(
            google_testing=google_publishing_status == "testing",
            microsoft_secret_expires_at=secret_end,
            warning_lead=timedelta(days=expiry_warning_days),
            testing_warning_lead=timedelta(days=testing_warning_days),
        )

    @property
    def keep_alive_ahead(self) -> timedelta:
        return max(KEEP_ALIVE_AHEAD, self.warning_lead + timedelta(days=1))


@dataclass(frozen=True)
class MailboxFacts:
    """What Sendwell knows about one connected mailbox's grant."""

    provider: str
    granted_at: datetime | None = None
    last_used_at: datetime | None = None
    certificate_expires_at: datetime | None = None


@dataclass(frozen=True)
class Expiry:
    """The earliest expected end of a mailbox's connection."""

    at: datetime
    reason: ExpiryReason
    why: str
    action: str
    warn_from: datetime

    @property
    def workspace_wide(self) -> bool:
        return self.reason in WORKSPACE_WIDE

    @property
    def kept_alive(self) -> bool:
        """Whether a refresh in time prevents it (the health check does that itself)."""
        return self.reason in KEPT_ALIVE

    def warning_due(self, now: datetime) -> bool:
        return now >= self.warn_from


def expected_expiry(facts: MailboxFacts, rules: ExpiryRules) -> Expiry | None:
    """The earliest expiry the facts predict, or None when nothing is known to end."""
    found = [e for e in _candidates(facts, rules) if e is not None]
    return min(found, key=lambda e: e.at) if found else None


def keep_alive_due(facts: MailboxFacts, rules: ExpiryRules, now: datetime) -> bool:
    """An idle token nearing its disuse limit: refresh it now so it does not lapse."""
    lapse = _unused_lapse(facts)
    return lapse is not None and now >= lapse - rules.keep_alive_ahead


def _candidates(facts: MailboxFacts, rules: ExpiryRules) -> list[Expiry | None]:
    if facts.provider == ProviderName.GOOGLE:
        return [_google_testing(facts, rules), _unused(facts, rules)]
    if facts.provider == ProviderName.MICROSOFT:
        return [_unused(facts, rules), _microsoft_secret(rules)]
    return [_certificate(facts, rules)]


def _google_testing(facts: MailboxFacts, rules: ExpiryRules) -> Expiry | None:
    if not rules.google_testing or facts.granted_at is None:
        return None
    at = facts.granted_at + GOOGLE_TESTING_LIFETIME
    return Expiry(
        at=at,
        reason=ExpiryReason.GOOGLE_TESTING_APP,
        why="The Google app is in Testing, so Google ends every sign-in 7 days after it was given.",
        action="Reauthenticate for another 7 days; an administrator can end these expiries "
        "by publishing the Google app (Google Cloud console → OAuth consent screen → "
        "Publish app).",
        warn_from=at - rules.testing_warning_lead,
    )


def _unused_lapse(facts: MailboxFacts) -> datetime | None:
    if facts.last_used_at is None:
        return None
    if facts.provider == ProviderName.GOOGLE:
        return facts.last_used_at + GOOGLE_UNUSED_LIFETIME
    if facts.provider == ProviderName.MICROSOFT:
        return facts.last_used_at + MICROSOFT_UNUSED_LIFETIME
    return None


def _unused(facts: MailboxFacts, rules: ExpiryRules) -> Expiry | None:
    at = _unused_lapse(facts)
    if at is None:
        return None
    google = facts.provider == ProviderName.GOOGLE
    return Expiry(
        at=at,
        reason=ExpiryReason.GOOGLE_UNUSED if google else ExpiryReason.MICROSOFT_UNUSED,
        why=f"{'Google' if google else 'Microsoft'} ends a sign-in that has not been used "
        f"for {'six months' if google else '90 days'}.",
        action="Nothing, while Sendwell's periodic check runs: it refreshes the sign-in in "
        "time. If the check has stopped, reauthenticate.",
        warn_from=at - rules.warning_lead,
    )


def _microsoft_secret(rules: ExpiryRules) -> Expiry | None:
    at = rules.microsoft_secret_expires_at
    if at is None:
        return None
    return Expiry(
        at=at,
        reason=ExpiryReason.MICROSOFT_CLIENT_SECRET,
        why="The Microsoft app's client secret expires, and with it every Microsoft account's "
        "connection.",
        action="An administrator adds a new client secret to the Microsoft Entra app "
        "registration and sets it in SENDWELL_MICROSOFT_CLIENT_SECRET (and the new date in "
        "SENDWELL_MICROSOFT_CLIENT_SECRET_EXPIRES).",
        warn_from=at - rules.warning_lead,
    )


def _certificate(facts: MailboxFacts, rules: ExpiryRules) -> Expiry | None:
    at = facts.certificate_expires_at
    if at is None:
        return None
    return Expiry(
        at=at,
        reason=ExpiryReason.SERVER_CERTIFICATE,
        why="The mail server's TLS certificate expires; Sendwell refuses a server whose "
        "certificate has expired.",
        action="Ask the mail server's administrator to renew its certificate.",
        warn_from=at - rules.warning_lead,
    )
