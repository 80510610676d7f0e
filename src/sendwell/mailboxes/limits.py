"""What each kind of account may send: the host's documented daily limit and a safe gap.

The daily limit a user sets is capped by what the host documents for the account type, so a
campaign cannot plan sends the host would refuse (and block the account for up to a day).
A gap between emails below the guidance is allowed, but only when the user confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sendwell.kit.errors import InvalidInput
from sendwell.providers.base import ProviderName

# The most any account may be set to, whatever the host (the field's own range).
MAX_DAILY_CAP = 10_000
# Below this gap, sends come in bursts that hosts' anti-spam systems watch for. No host
# documents a number for one-to-one mail; 60 s is the usual default of outreach tools
# (SeekOut's, in docs PRODUCT.md "Facts from the field"), and Google asks bulk senders to
# send "at a consistent rate" and to avoid bursts
# (https://support.google.com/mail/answer/81126).
GAP_GUIDANCE_SECONDS = 60

# Consumer domains: an address there is a personal account, not a company's.
GMAIL_CONSUMER_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
OUTLOOK_CONSUMER_DOMAINS = frozenset(
    {"outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com"}
)


@dataclass(frozen=True)
class AccountLimits:
    """The account type as users read it, its daily cap (None: no documented cap) and why."""

    kind: str
    daily_cap: int | None
    reason: str
    source: str = ""


def limits_for(provider: ProviderName | str, email: str) -> AccountLimits:
    """The documented limits of the account `email` on `provider`."""
    domain = email.rsplit("@", 1)[-1].strip().lower()
    name = ProviderName(provider)
    if name is ProviderName.GOOGLE and domain in GMAIL_CONSUMER_DOMAINS:
        # https://support.google.com/mail/answer/22839: personal Gmail, 500 recipients a day.
        return AccountLimits(
            "Gmail account",
            500,
            "Gmail lets a personal account send to about 500 recipients a day; over it, "
            "sending is blocked for up to 24 hours.",
            "https://support.google.com/mail/answer/22839",
        )
    if name is ProviderName.GOOGLE:
        # https://support.google.com/a/answer/166852: Workspace, 2,000 messages a day per
        # user (500 during a trial).
        return AccountLimits(
            "Google Workspace account",
            2000,
            "Google Workspace allows 2,000 messages a day per user (500 on a trial account); "
            "over it, sending is blocked for up to 24 hours.",
            "https://support.google.com/a/answer/166852",
        )
    if name is ProviderName.MICROSOFT and domain in OUTLOOK_CONSUMER_DOMAINS:
        # https://support.microsoft.com/office/sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e
        # 5,000 daily recipients for Microsoft 365 subscribers, lower for free accounts.
        return AccountLimits(
            "Outlook.com account",
            5000,
            "Outlook.com allows at most 5,000 recipients a day (Microsoft 365 subscribers; "
            "free accounts get less, often 300).",
            "https://support.microsoft.com/office/sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e",
        )
    if name is ProviderName.MICROSOFT:
        # https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits-1
        # 10,000 recipients a day and 30 messages a minute per mailbox.
        return AccountLimits(
            "Microsoft 365 account",
            10_000,
            "Exchange Online (Microsoft 365) allows 10,000 recipients a day and 30 messages "
            "a minute per mailbox.",
            "https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits-1",
        )
    return AccountLimits(
        "Mail server account",
        None,
        "No limit is known for this mail server: ask its administrator what it allows.",
    )


def check_daily_cap(limits: AccountLimits, daily_cap: int) -> None:
    """Refuse a daily limit outside 1 and the account's documented cap, saying why."""
    cap = limits.daily_cap or MAX_DAILY_CAP
    if 1 <= daily_cap <= cap:
        return
    if daily_cap > cap and limits.daily_cap is not None:
        raise InvalidInput(
            f"The daily limit of a {limits.kind} can be at most {cap:,} emails: {limits.reason}",
            code="invalid_daily_cap",
        )
    raise InvalidInput(
        f"The daily limit must be between 1 and {cap:,} emails.", code="invalid_daily_cap"
    )


def low_gap_warning(seconds: int) -> str:
    """Why a gap below the guidance is risky; empty when the gap is at or above it."""
    if seconds >= GAP_GUIDANCE_SECONDS:
        return ""
    return (
        f"A gap under {GAP_GUIDANCE_SECONDS} seconds sends in bursts, which mail hosts read "
        "as bulk mail: your emails may land in spam or the account may be blocked. Tick "
        "“I understand the risk of a short gap” to keep it."
    )


class LowGapNotConfirmed(InvalidInput):
    code = "low_gap_not_confirmed"
