"""Campaigns, their steps, recipients (enrollments), history, the send ledger, suppressions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base, str_enum
from sendwell.models.mailbox import Mailbox


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class PauseReason(enum.StrEnum):
    USER = "user"
    MAILBOX_REAUTH_REQUIRED = "mailbox_reauth_required"
    MAILBOX_REAUTHENTICATED = "mailbox_reauthenticated"
    MAILBOX_DISCONNECTED = "mailbox_disconnected"
    SEND_ERRORS = "send_errors"
    MAILBOX_BLOCKED = "mailbox_blocked"
    BOUNCE_RATE = "bounce_rate"
    OWNER_DEACTIVATED = "owner_deactivated"
    DELEGATION_WITHDRAWN = "delegation_withdrawn"


class CatchUp(enum.StrEnum):
    """What Resume does with steps that fell due while a campaign was paused."""

    # Overdue steps go now, at the mailbox's pace and the campaign's schedule.
    CATCH_UP = "catch_up"
    # Every pending step moves later by the length of the pause.
    SHIFT = "shift"
    # Steps overdue by more than the campaign's skip days are skipped.
    SKIP = "skip"


class EnrollmentStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    FAILED = "failed"
    # Set by a person for this recipient only: no email until resumed.
    PAUSED = "paused"
    # Taken out of the campaign by a person: no more email from it.
    REMOVED = "removed"
    # Moved to another campaign by a person (status_reason names which).
    MOVED = "moved"


# Recipients with a step still to come. Written out as SQL, not bound parameters: a partial
# index serves a query only when the database can see the query implies its condition.
PENDING_STATUSES = (EnrollmentStatus.NOT_STARTED, EnrollmentStatus.IN_PROGRESS)
PENDING = "status IN ({})".format(", ".join(f"'{s.value}'" for s in PENDING_STATUSES))


class LedgerStatus(enum.StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"
    # Never sent, on purpose: a Resume skipped it as too overdue. Final, like SENT.
    SKIPPED = "skipped"


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    DO_NOT_CONTACT = "do_not_contact"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[CampaignStatus] = mapped_column(str_enum(CampaignStatus), index=True)
    pause_reason: Mapped[PauseReason | None] = mapped_column(str_enum(PauseReason), default=None)
    # While archived: the status it had before, so Restore returns it there.
    archived_from: Mapped[CampaignStatus | None] = mapped_column(
        str_enum(CampaignStatus), default=None
    )
    # Schedule: empty days = every day; no start/end = any hour.
    schedule_days: Mapped[str] = mapped_column(String(40), default="")
    schedule_start: Mapped[str | None] = mapped_column(String(5), default=None)
    schedule_end: Mapped[str | None] = mapped_column(String(5), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_delay_minutes: Mapped[int] = mapped_column(Integer, default=20)
    unsubscribe_footer: Mapped[bool] = mapped_column(Boolean, default=False)
    # Failed sends in a row; too many pause the campaign (reason send_errors).
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # What a Resume does with overdue steps unless told otherwise, and the skip threshold.
    catch_up: Mapped[CatchUp] = mapped_column(
        str_enum(CatchUp), default=CatchUp.CATCH_UP, server_default=CatchUp.CATCH_UP.value
    )
    catch_up_skip_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    # The bounce-rate guard (dispatch/bounce_guard.py): the campaign pauses itself when at
    # least this percentage of its last `bounce_pause_min_sends` sends bounced. Only sends
    # after `bounce_window_start` (when the guard last paused it) count.
    bounce_pause_percent: Mapped[float] = mapped_column(Float, default=2.0, server_default="2")
    bounce_pause_min_sends: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    bounce_window_start: Mapped[datetime | None] = mapped_column(default=None)
    # A recipient whose mail host answers with an automatic reply (out of office) gets no
    # email for this many days (dispatch/holds.py); 0 lets auto-replies pass unnoticed.
    auto_reply_hold_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # Some recipients have a time zone of their own: the claim judges the sending window per
    # recipient (dispatch/engine.py) rather than once for the campaign.
    recipient_time_zones: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailbox: Mapped[Mailbox] = relationship(lazy="raise")
    steps: Mapped[list[CampaignStep]] = relationship(
        lazy="raise", order_by="CampaignStep.position", cascade="all, delete-orphan"
    )


class CampaignStep(Base):
    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    new_thread: Mapped[bool] = mapped_column(Boolean, default=False)


class Enrollment(Base):
    """A recipient in a campaign and how far their sequence has gone."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "email"),
        # Recipients by status per campaign, counted from the index alone (Campaigns tab).
        Index("ix_enrollments_campaign_id_status", "campaign_id", "status"),
        # Only recipients with a step still to go, per campaign in due order: the claim finds
        # the earliest due ones and the completion check the first pending one without
        # reading finished rows.
        # Holds to release (dispatch/holds.py); almost every row has none, and only rows
        # with one are indexed (a new recipient adds nothing to it).
        Index(
            "ix_enrollments_held_until",
            "held_until",
            sqlite_where=text("held_until IS NOT NULL"),
            postgresql_where=text("held_until IS NOT NULL"),
        ),
        # An address across the workspace's campaigns: its history elsewhere, checked for
        # every batch of an import, and an unsubscribe's other sequences.
        Index("ix_enrollments_email", "email"),
        Index(
            "ix_enrollments_pending",
            "campaign_id",
            "next_due_at",
            "id",
            sqlite_where=text(PENDING),
            postgresql_where=text(PENDING),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[EnrollmentStatus] = mapped_column(str_enum(EnrollmentStatus))
    steps_sent: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    thread_id: Mapped[str] = mapped_column(String(255), default="")
    last_message_id: Mapped[str] = mapped_column(String(998), default="")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # When `status` last changed (stamped by `models.lifecycle.enroll`, the one way it
    # changes); empty for rows from before it was kept.
    status_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Held after an automatic reply: no email before this moment, and why (words).
    held_until: Mapped[datetime | None] = mapped_column(default=None)
    hold_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # An IANA time zone in which the campaign's sending days and hours apply to this
    # recipient; "" for the campaign's own.
    timezone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def enrollment_pending() -> ColumnElement[bool]:
    """`Enrollment.status` is pending, in the form the pending index is chosen for."""
    return Enrollment.status.in_([literal_column(f"'{s.value}'") for s in PENDING_STATUSES])


class CampaignEvent(Base):
    __tablename__ = "campaign_events"
    __table_args__ = (Index("ix_campaign_events_campaign_id_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    reason: Mapped[str] = mapped_column(Text, default="")


class SendLedger(Base):
    """One row per (enrollment, step): claimed before the provider is called, never twice."""

    __tablename__ = "send_ledger"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_position"),
        Index("ix_send_ledger_status_not_before", "status", "not_before"),
        # The rolling daily cap counts a mailbox's recent sends on every claim.
        Index("ix_send_ledger_mailbox_id_claimed_at", "mailbox_id", "claimed_at"),
        # Sent counts per campaign (Campaigns tab) and sends in flight (pause) by campaign.
        Index("ix_send_ledger_campaign_id_status", "campaign_id", "status"),
        # A campaign's latest sends, newest first (the bounce-rate guard's window).
        Index("ix_send_ledger_campaign_id_sent_at", "campaign_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"), index=True)
    step_position: Mapped[int] = mapped_column(Integer)
    status: Mapped[LedgerStatus] = mapped_column(str_enum(LedgerStatus))
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    worker: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str] = mapped_column(String(255), default="")
    thread_id: Mapped[str] = mapped_column(String(255), default="")
    message_id_header: Mapped[str] = mapped_column(String(998), default="")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    error: Mapped[str] = mapped_column(Text, default="")
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class Suppression(Base):
    """An address the workspace never emails again, and why."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[SuppressionReason] = mapped_column(str_enum(SuppressionReason))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
