"""Mailboxes (connected email accounts), their event history, and link attempts in flight."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base, str_enum
from sendwell.models.user import User
from sendwell.providers.base import ProviderName


class MailboxStatus(enum.StrEnum):
    CONNECTED = "connected"
    REAUTH_REQUIRED = "reauth_required"
    DISCONNECTED = "disconnected"


class MailboxEventKind(enum.StrEnum):
    CONNECTED = "connected"
    REAUTHENTICATED = "reauthenticated"
    REFRESHED = "refreshed"
    FAILED = "failed"
    REAUTH_REQUIRED = "reauth_required"
    DISCONNECTED = "disconnected"
    SETTINGS_CHANGED = "settings_changed"
    DOMAIN_HEALTH_WORSENED = "domain_health_worsened"
    DELEGATED = "delegated"
    DELEGATION_WITHDRAWN = "delegation_withdrawn"


class Mailbox(Base):
    """A user's email account. Identity is (provider, subject): the address may change hands."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[ProviderName] = mapped_column(str_enum(ProviderName))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320), index=True)
    status: Mapped[MailboxStatus] = mapped_column(str_enum(MailboxStatus))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_code: Mapped[str] = mapped_column(String(100), default="")
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    access_token: Mapped[str | None] = mapped_column(Text, default=None)
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)
    token_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    scopes: Mapped[str] = mapped_column(Text, default="")
    # Bumped on every token write: a refresh saves only if nobody saved in between.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    transient_failures: Mapped[int] = mapped_column(Integer, default=0)
    first_transient_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    signature: Mapped[str] = mapped_column(Text, default="")
    # Pacing shared by every worker: no send for this mailbox may start before this moment.
    send_not_before: Mapped[datetime | None] = mapped_column(default=None)
    # One worker at a time sends for a mailbox: it holds this lease while it works through a
    # batch, so a revoked grant costs one refused send, not one per worker.
    sender: Mapped[str] = mapped_column(String(64), default="", server_default="")
    sender_until: Mapped[datetime | None] = mapped_column(default=None)
    inbound_cursor: Mapped[str | None] = mapped_column(Text, default=None)
    inbound_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the inbox is next read (None: at once). Set at each read: the read interval after
    # a read that found something or followed a send, doubled after each quiet one up to the
    # quiet interval (dispatch/inbound.py, `next_interval`).
    inbound_read_due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    daily_cap: Mapped[int] = mapped_column(Integer, default=1000)
    min_gap_seconds: Mapped[int] = mapped_column(Integer, default=60)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(lazy="raise")

    @property
    def needs_attention(self) -> bool:
        return self.status is not MailboxStatus.CONNECTED


class DueMark(Base):
    """What the sending walk knows of a mailbox's recipients, one row per mailbox (made with
    it by a database trigger). Kept apart from `mailboxes`, whose row every send, inbox read
    and gate locks."""

    __tablename__ = "mailbox_due_marks"

    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    # No recipient of the mailbox is due before this moment, as a claim that found nothing
    # due worked out: the walk leaves the mailbox out until then (None: look). Cleared by
    # database triggers whenever a recipient may be due sooner (migration 0023).
    nothing_due_before: Mapped[datetime | None] = mapped_column(default=None, index=True)


class MailboxEvent(Base):
    """One line of a mailbox's history: what happened, who or what did it, and why."""

    __tablename__ = "mailbox_events"
    __table_args__ = (Index("ix_mailbox_events_mailbox_id_at", "mailbox_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[MailboxEventKind] = mapped_column(str_enum(MailboxEventKind))
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    provider_code: Mapped[str] = mapped_column(String(100), default="")


class LinkAttempt(Base):
    """An authorization in flight: bound to one browser session, used once, soon expired."""

    __tablename__ = "link_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[ProviderName] = mapped_column(str_enum(ProviderName))
    typed_email: Mapped[str] = mapped_column(String(320))
    code_verifier: Mapped[str] = mapped_column(Text)
    # A grant for another address than the one typed, encrypted, kept until the user decides.
    pending_grant: Mapped[str | None] = mapped_column(Text, default=None)
    # Linking a mailbox to approve a teammate's request to send from it: back to that request.
    delegation_id: Mapped[int | None] = mapped_column(
        ForeignKey("delegations.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class MailServer(Base):
    """How an IMAP/SMTP ("Other") mailbox reaches its servers; the secret is encrypted."""

    __tablename__ = "mail_servers"

    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    smtp_host: Mapped[str] = mapped_column(String(255))
    smtp_port: Mapped[int] = mapped_column(Integer)
    smtp_security: Mapped[str] = mapped_column(String(16))
    imap_host: Mapped[str] = mapped_column(String(255))
    imap_port: Mapped[int] = mapped_column(Integer)
    imap_security: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(320))
    auth_method: Mapped[str] = mapped_column(String(16), default="password")
    # The password, app password or XOAUTH2 token, sealed with the token keys; None once the
    # account is disconnected.
    secret: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The earlier notAfter of the two servers' certificates, read at most once a day.
    certificate_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    certificate_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    # The account's webmail (e.g. https://mail.example.com/), where "Open thread" links go:
    # IMAP has no link to a message of its own. Empty when the user has not said.
    webmail_url: Mapped[str] = mapped_column(String(2000), default="", server_default="")
