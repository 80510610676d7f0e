"""A CSV file uploaded for import, kept between the upload and the mapping's confirmation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base


class PendingImport(Base):
    """One upload, usable only by the user who made it, for its campaign, until it expires.

    Kept in the database (not on one web process's disk) so the confirmation may reach any
    process; deleted when it is imported, and expired ones whenever their owner uploads again.
    """

    __tablename__ = "pending_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    # A random key for the mapping page's form; the owner and campaign are still checked.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
