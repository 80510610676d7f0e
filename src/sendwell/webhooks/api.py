"""JSON routes for webhook endpoints and their deliveries (workspace admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.config import Settings
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import User
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.webhooks import service
from sendwell.webhooks.schemas import (
    DeliveryOut,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get("", response_model=list[EndpointOut], summary="Webhook endpoints")
def list_endpoints(
    user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> list[EndpointOut]:
    return [EndpointOut.of(e) for e in service.list_endpoints(db, user)]


@router.post(
    "",
    response_model=EndpointWithSecret,
    status_code=201,
    summary="Register an endpoint; the answer holds its signing secret",
)
def create_endpoint(
    body: EndpointIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
    settings: Settings = Depends(get_settings),
) -> EndpointWithSecret:
    endpoint = service.create_endpoint(
        db,
        services.box,
        user,
        url=body.url,
        events=body.events,
        secret=body.secret,
        description=body.description,
        outbound=settings.outbound_policy,
    )
    return EndpointWithSecret(
        **EndpointOut.of(endpoint).model_dump(),
        secret=service.reveal_secret(services.box, endpoint),
    )


@router.get("/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
def get_endpoint(
    endpoint_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> EndpointOut:
    return EndpointOut.of(service.get_endpoint(db, user, endpoint_id))


@router.patch(
    "/{endpoint_id}", response_model=EndpointOut, summary="Change, enable or disable an endpoint"
)
def patch_endpoint(
    endpoint_id: int,
    body: EndpointPatch,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
    settings: Settings = Depends(get_settings),
) -> EndpointOut:
    endpoint = service.update_endpoint(
        db,
        services.box,
        user,
        endpoint_id,
        outbound=settings.outbound_policy,
        **body.model_dump(exclude_unset=True),
    )
    return EndpointOut.of(endpoint)


@router.delete("/{endpoint_id}", status_code=204, summary="Remove an endpoint and its log")
def delete_endpoint(
    endpoint_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.delete_endpoint(db, user, endpoint_id)
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="The latest 50 deliveries, newest first, each with every attempt",
)
def list_deliveries(
    endpoint_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> list[DeliveryOut]:
    return [DeliveryOut.of(v) for v in service.recent_deliveries(db, user, endpoint_id)]
