"""The Messaging section's Campaigns tab."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from sendwell.accounts.auth import current_user
from sendwell.models import User
from sendwell.web.pages import render

router = APIRouter()


@router.get("/messaging")
def messaging(_user: User = Depends(current_user)) -> Response:
    return RedirectResponse("/messaging/campaigns", status_code=303)


@router.get("/messaging/campaigns")
def campaigns_tab(request: Request, _user: User = Depends(current_user)) -> Response:
    return render(request, "messaging/campaigns.html", {"tab": "campaigns"})
