"""Invitations to join the workspace: a one-time link, stored as a hash, that expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base, str_enum
from sendwell.models.user import Role


class Invitation(Base):
    """An admin's invitation: whoever opens the link once, before it expires, joins."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, length=16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def open(self) -> bool:
        """Not yet used or cancelled (it may still have expired)."""
        return self.accepted_at is None and self.cancelled_at is None
