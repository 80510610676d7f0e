"""JSON shapes of the accounts API."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from sendwell.kit.schemas import RequestBody
from sendwell.models import Role


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role
    active: bool = Field(
        validation_alias=AliasChoices("active", "is_active"),
        description="False once an admin deactivated the user.",
    )
    created_at: datetime
    last_sign_in_at: datetime | None
    deactivated_at: datetime | None


class PasswordIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: str = Field(
        max_length=1024, description="10 to 1,024 characters, not a common password."
    )
    revoke_tokens: bool = Field(
        default=False, description="Also revoke every API token, this one included."
    )


class TokenIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the token is for.")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    hint: str = Field(description="The token's last four characters.")
    created_at: datetime
    last_used_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself. Shown only in this response.")
