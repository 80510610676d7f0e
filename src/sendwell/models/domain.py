"""Each mailbox's sending domain as DNS last described it: MX, SPF, DKIM and DMARC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.models.base import Base


class DomainCheck(Base):
    __tablename__ = "domain_checks"

    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(253))
    # DKIM selectors the user named besides the host's usual ones, comma-separated.
    selectors: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # The host that publishes and signs for a consumer domain (gmail.com…), else "".
    handled_by: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # One object per check: name, status, found, meaning, record (mailboxes/domain_health.py).
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
