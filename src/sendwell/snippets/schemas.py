"""The snippets API's request and response shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sendwell.kit.schemas import RequestBody


class SnippetIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, description="Shown in the editor's snippet list.")
    body: str = Field(
        max_length=10_000,
        description="The text inserted; merge fields such as {{ first_name }} are rendered "
        "with the step it is inserted into.",
    )


class SnippetPatch(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    body: str | None = Field(default=None, max_length=10_000)


class SnippetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    body: str
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime
