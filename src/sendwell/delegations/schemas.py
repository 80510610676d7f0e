"""JSON shapes of the delegations API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from sendwell.models import DelegationStatus


class DelegationOut(BaseModel):
    id: int
    you_are: Literal["owner", "delegate"] = Field(
        description="owner: the mailbox is yours and you approve; delegate: you send from it."
    )
    delegate_id: int
    owner_id: int
    mailbox_id: int | None = Field(description="Chosen by the owner when they approve.")
    mailbox_email: str | None
    status: DelegationStatus
    note: str
    requested_at: datetime
    granted_at: datetime | None
    withdrawn_at: datetime | None
