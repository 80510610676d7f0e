"""Delegations: a teammate's approval for another user to send campaigns from their mailbox."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base, str_enum


class DelegationStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    WITHDRAWN = "withdrawn"
    DECLINED = "declined"


class Delegation(Base):
    """Who (the delegate) may send as whom (the mailbox's owner), from which mailbox, since when.

    The mailbox stays its owner's: they linked it, they reauthenticate it, replies land there.
    """

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # The user who asked and sends (the recruiter).
    delegate_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The teammate asked, who owns the mailbox and approves.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Chosen by the owner when they approve.
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id"), default=None, index=True
    )
    status: Mapped[DelegationStatus] = mapped_column(str_enum(DelegationStatus, length=16))
    note: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_at: Mapped[datetime | None] = mapped_column(default=None)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def approved(self) -> bool:
        return self.status is DelegationStatus.APPROVED
