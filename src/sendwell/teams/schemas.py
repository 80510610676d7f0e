"""JSON shapes of the team API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sendwell.accounts.schemas import UserOut
from sendwell.kit.schemas import RequestBody
from sendwell.models import Role


class InviteIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, description="Who to invite.")
    role: Role = Role.MEMBER


class InvitationOut(BaseModel):
    id: int
    email: str
    role: Role
    expires_at: datetime
    emailed: bool = Field(description="True when the server emailed the link (SENDWELL_SMTP_URL).")
    invite_url: str | None = Field(
        description="The one-time link, when it was not emailed: give it to the person yourself."
    )


class UserPatch(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200, description="Anyone, for themselves.")
    role: Role | None = Field(default=None, description="Admins only.")


class DeactivatedOut(BaseModel):
    user: UserOut
    paused_campaigns: list[int] = Field(description="The campaigns this paused.")


class ReassignIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    owner_id: int = Field(description="An active user of the workspace.")
    mailbox_id: int = Field(description="An email account that user may send from.")
