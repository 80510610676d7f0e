"""The Webhooks tab (admins): register endpoints, see every delivery attempt, enable again."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.config import Settings
from sendwell.kit.errors import InvalidInput
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.web import load_alerts
from sendwell.models import User
from sendwell.web.deps import get_db, get_services, get_settings
from sendwell.web.pages import redirect_with_flash, render
from sendwell.webhooks import service

WEBHOOKS_TAB = "/messaging/webhooks"

router = APIRouter(dependencies=[Depends(load_alerts)])


@router.get(WEBHOOKS_TAB)
def webhooks_tab(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _list_page(request, db, user)


@router.post(WEBHOOKS_TAB)
async def add_endpoint(
    request: Request,
    url: str = Form(""),
    description: str = Form(""),
    secret: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
    settings: Settings = Depends(get_settings),
) -> Response:
    events = [str(value) for value in (await request.form()).getlist("events")]
    try:
        endpoint = service.create_endpoint(
            db,
            services.box,
            user,
            url=url,
            events=events,
            secret=secret,
            description=description,
            outbound=settings.outbound_policy,
        )
    except InvalidInput as error:
        form: dict[str, object] = {"url": url, "description": description, "events": events}
        return _list_page(request, db, user, error=error.message, form=form, status_code=422)
    return redirect_with_flash(
        request,
        f"{WEBHOOKS_TAB}/{endpoint.id}",
        "Endpoint added. Verify each request with the signing secret shown below.",
    )


@router.get(WEBHOOKS_TAB + "/{endpoint_id}")
def endpoint_page(
    request: Request,
    endpoint_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Response:
    endpoint = service.get_endpoint(db, user, endpoint_id)
    return render(
        request,
        "webhooks/detail.html",
        {
            "tab": "webhooks",
            "endpoint": endpoint,
            "secret": service.reveal_secret(services.box, endpoint),
            "deliveries": service.recent_deliveries(db, user, endpoint_id),
        },
    )


@router.post(WEBHOOKS_TAB + "/{endpoint_id}/delete")
def delete_endpoint(
    request: Request,
    endpoint_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.delete_endpoint(db, user, endpoint_id)
    return redirect_with_flash(request, WEBHOOKS_TAB, "Endpoint removed.")


def _list_page(
    request: Request,
    db: Session,
    user: User,
    *,
    error: str = "",
    form: dict[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "messaging/webhooks.html",
        {
            "tab": "webhooks",
            "endpoints": service.list_endpoints(db, user),
            "event_types": service.EVENT_TYPES,
            "error": error,
            "form": form or {"url": "", "description": "", "events": []},
        },
        status_code=status_code,
    )


SWITCHED = {
    "enable": "Endpoint enabled; deliveries that were waiting go out now.",
    "disable": (
        "Endpoint disabled. Deliveries already waiting are held until you enable it again; "
        "events from now on are not sent to it."
    ),
}


@router.post(WEBHOOKS_TAB + "/{endpoint_id}/{switch}")
def switch_endpoint(
    request: Request,
    endpoint_id: int,
    switch: Literal["enable", "disable"],
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
    settings: Settings = Depends(get_settings),
) -> Response:
    service.update_endpoint(
        db,
        services.box,
        user,
        endpoint_id,
        enabled=switch == "enable",
        outbound=settings.outbound_policy,
    )
    return redirect_with_flash(request, f"{WEBHOOKS_TAB}/{endpoint_id}", SWITCHED[switch])
