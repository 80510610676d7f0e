"""JSON shapes of the replies API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from sendwell.kit.schemas import RequestBody
from sendwell.models import Interest, ReplyKind


class ReplyOut(BaseModel):
    id: int
    campaign_id: int
    campaign_name: str
    recipient_id: int
    recipient_email: str
    step: int = Field(description="The step whose email this answers.")
    received_at: datetime
    from_address: str
    subject: str
    snippet: str = Field(description="The host's own short text, when it offers one (Gmail).")
    kind: ReplyKind
    interest: Interest
    marked_by_id: int | None
    marked_at: datetime | None
    thread_url: str | None = Field(
        description="Opens the thread in the user's own mailbox; null when there is no link."
    )
    thread_note: str = Field(description="Why there is no link, or what the link opens.")
    provider_message_id: str
    thread_id: str


class ReplyPatch(RequestBody):
    interest: Interest
