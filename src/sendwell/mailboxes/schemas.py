"""JSON shapes of the mailboxes API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sendwell.kit.schemas import RequestBody
from sendwell.models import MailboxStatus


class ExpiryOut(BaseModel):
    at: datetime = Field(description="When the connection is expected to end (UTC).")
    reason: str = Field(
        description="google_testing_app, google_unused, microsoft_unused, "
        "microsoft_client_secret or server_certificate."
    )
    why: str
    action: str = Field(description="The one action that prevents it.")
    warn_from: datetime = Field(description="From when its owner (and admins) are warned.")


class MailboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    provider: str
    status: MailboxStatus
    status_reason: str = Field(description="Why the mailbox needs attention, in words.")
    status_code: str = Field(description="The provider's error code behind the status, if any.")
    status_changed_at: datetime
    owner_id: int
    display_name: str
    signature: str
    daily_cap: int
    min_gap_seconds: int
    created_at: datetime
    expected_expiry: ExpiryOut | None = Field(
        default=None,
        description="The earliest expected end of a connected account's sign-in, if any is known.",
    )


class MailboxExpiryOut(BaseModel):
    mailbox_id: int
    email: str
    provider: str
    status: MailboxStatus
    owner_email: str
    expected_expiry: ExpiryOut | None


class MailboxPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_cap: int | None = Field(default=None, ge=1, le=10_000)
    min_gap_seconds: int | None = Field(default=None, ge=0, le=86_400)
    display_name: str | None = Field(default=None, max_length=200)
    signature: str | None = Field(default=None, max_length=5000)
    low_gap_confirmed: bool = Field(
        default=False,
        description="Keep a min_gap_seconds below the guidance (60 s): sends in bursts risk spam "
        "folders and blocks. Without it such a gap is refused (low_gap_not_confirmed).",
    )


class LinkIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(description="The address to link; the user signs in as it.")
    provider: str | None = Field(
        default=None, description="google or microsoft; found from the address when omitted."
    )


class LinkOut(BaseModel):
    authorize_url: str = Field(
        description="Open in the browser where the user is signed in to Sendwell; it expires "
        "after 15 minutes and works once."
    )
    provider: str


class ServerLinkIn(RequestBody):
    """An IMAP/SMTP ("Other") account: both servers are signed in to before anything is saved."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(description="The account's address.")
    smtp_host: str
    smtp_port: int | None = Field(
        default=None, ge=1, le=65535, description="465 for tls, 587 for starttls when omitted."
    )
    smtp_security: Literal["tls", "starttls"] = "tls"
    imap_host: str
    imap_port: int | None = Field(
        default=None, ge=1, le=65535, description="993 for tls, 143 for starttls when omitted."
    )
    imap_security: Literal["tls", "starttls"] = "tls"
    username: str = Field(default="", description="The sign-in name; the address when empty.")
    password: str = Field(
        description="Password, app password, or XOAUTH2 access token; stored encrypted."
    )
    auth_method: Literal["password", "xoauth2"] = "password"


class DomainCheckOut(BaseModel):
    name: Literal["MX", "SPF", "DKIM", "DMARC"]
    status: Literal["ok", "warning", "missing", "unknown"] = Field(
        description="ok; warning (present but wrong: needs a fix); missing; unknown (not "
        "checked: DNS gave no answer, or no DKIM selector is known)."
    )
    found: str = Field(description="What DNS gave, or what was missing.")
    meaning: str = Field(description="What it means for the delivery of your emails.")
    record: str = Field(description="The record to add or change; empty when nothing is needed.")


class DomainHealthOut(BaseModel):
    mailbox_id: int
    email: str = Field(description="The account's address.")
    domain: str = Field(description="The sending domain: the address after its @.")
    handled_by: str | None = Field(
        description="Google or Microsoft for an address at gmail.com, outlook.com and the like: "
        "that provider publishes the records and signs the mail, so `checks` is empty. Null "
        "for a domain of your own."
    )
    selectors: list[str] = Field(
        description="DKIM selectors named for this account besides the host's usual ones "
        "(google for Google Workspace, selector1 and selector2 for Microsoft 365)."
    )
    checked_at: datetime | None = Field(
        description="When DNS was last asked (UTC); null before the first check."
    )
    checks: list[DomainCheckOut] = Field(description="MX, SPF, DKIM and DMARC, in that order.")


class DomainHealthIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    selectors: list[str] | None = Field(
        default=None,
        description="The DKIM selectors to check besides the host's usual ones (at most 10, "
        "such as s1 or mail2024); they replace those named before, [] names none. Omitted: "
        "the ones named before.",
    )
