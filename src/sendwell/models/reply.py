"""Replies: the answers (and automatic answers) a campaign's emails received, as the user's
mailbox reports them, and the user's own judgement of each."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base, str_enum


class ReplyKind(enum.StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"


class Interest(enum.StrEnum):
    NONE = "none"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"


class Reply(Base):
    """One inbound message that answers one recipient's email.

    Recorded by the inbound reader in the unit of work that stops (or holds) the recipient;
    a message read again finds its row by (mailbox, the provider's message id, recipient) and
    adds nothing. Only metadata is kept: the snippet is what the host itself offers under the
    permissions Sendwell asks for, never a body it read.
    """

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "provider_message_id", "enrollment_id"),
        Index("ix_replies_campaign_id_received_at", "campaign_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    # The step whose email this answers (the latest one it names, else the thread's latest).
    step_position: Mapped[int] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    from_address: Mapped[str] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(String(300), default="")
    provider_message_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str] = mapped_column(String(998), default="")
    # The host's own link to the message (Graph's webLink, Gmail's thread view); IMAP
    # accounts link through their webmail address, read when the link is shown.
    web_link: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[ReplyKind] = mapped_column(str_enum(ReplyKind, length=16))
    interest: Mapped[Interest] = mapped_column(str_enum(Interest, length=16), default=Interest.NONE)
    marked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    marked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
