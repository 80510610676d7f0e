"""Expiry warnings already given: one per cause and expected date, so nobody is told twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base


class ExpiryWarning(Base):
    """A warning sent ahead of an expected expiry; the unique key makes it once-only."""

    __tablename__ = "expiry_warnings"
    __table_args__ = (UniqueConstraint("workspace_id", "scope", "reason", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # "mailbox:<id>" for one account, "workspace" for a cause every account shares.
    scope: Mapped[str] = mapped_column(String(40))
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), default=None, index=True
    )
    reason: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
