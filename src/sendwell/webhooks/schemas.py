"""JSON shapes of the webhooks API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sendwell.kit.schemas import RequestBody
from sendwell.models import DeliveryStatus, WebhookEndpoint
from sendwell.webhooks.service import EVENT_TYPES, DeliveryView

EVENTS_HELP = "Event types to send: " + ", ".join(EVENT_TYPES) + "."


class EndpointIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="An https:// (or http://) URL on a public host.")
    events: list[str] = Field(min_length=1, max_length=20, description=EVENTS_HELP)
    secret: str = Field(
        default="",
        max_length=200,
        description="The signing secret (16+ characters); empty to have one generated.",
    )
    description: str = Field(default="", max_length=200)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    secret: str | None = Field(
        default=None, max_length=200, description="A new signing secret; empty generates one."
    )
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(
        default=None, description="true retries what waits at once; false stops deliveries."
    )


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str = Field(description="Why it was disabled, in words.")
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="Every attempt has failed since then; after a day it is disabled."
    )
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=endpoint.event_types,
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            disabled_at=endpoint.disabled_at,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
        )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="Verify each request's Sendwell-Signature header with it.")


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    succeeded: bool
    status_code: int | None = Field(description="The endpoint's HTTP status, if it answered.")
    error: str = Field(description="What went wrong, in words.")
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    last_error: str
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        delivery = view.delivery
        return cls(
            id=delivery.id,
            event_id=f"evt_{view.event.id}",
            event_type=view.event.type,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=(
                delivery.next_attempt_at if delivery.status is DeliveryStatus.PENDING else None
            ),
            last_error=delivery.last_error,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            attempt_log=[AttemptOut.model_validate(a) for a in view.attempts],
        )
