"""The live pages' JSON: polled by web/static/live.js while the page is visible."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.dispatch import live
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import User
from sendwell.web.deps import get_db, get_services

router = APIRouter()


def _fresh(payload: dict[str, Any]) -> JSONResponse:
    # Always asked afresh: a cached answer would show a stale campaign.
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


@router.get("/messaging/campaigns/live")
def campaigns_tab_live(
    ids: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> JSONResponse:
    """The Campaigns tab's rows (`ids`: the campaigns the page shows)."""
    return _fresh(
        live.campaigns_tab(
            db, user, live.parse_ids(ids), host_interval=live.host_interval_of(services)
        )
    )


@router.get("/campaigns/{campaign_id}/live")
def campaign_live(
    campaign_id: int,
    ids: str = "",
    sent: str = "",
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> JSONResponse:
    """A campaign page's live parts (`ids`: the recipient rows it shows; `sent`: the number
    sent it shows, so the chart comes back only when that changed)."""
    known = int(sent) if sent.isascii() and sent.isdigit() and len(sent) < 12 else None
    return _fresh(
        live.campaign_page(
            db,
            user,
            campaign_id,
            enrollment_ids=live.parse_ids(ids),
            known_sent=known,
            host_interval=live.host_interval_of(services),
        )
    )


@router.get("/campaigns/{campaign_id}/recipients/{enrollment_id}/live")
def recipient_live(
    campaign_id: int,
    enrollment_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> JSONResponse:
    """One recipient's status, next email and sequence."""
    return _fresh(
        live.recipient_page(
            db, user, campaign_id, enrollment_id, host_interval=live.host_interval_of(services)
        )
    )
