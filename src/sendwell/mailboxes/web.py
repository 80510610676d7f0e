"""The Messaging section's Settings tab."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sendwell.accounts.auth import current_user
from sendwell.models import User
from sendwell.web.pages import render

router = APIRouter()


@router.get("/messaging/settings")
def settings_tab(request: Request, _user: User = Depends(current_user)) -> Response:
    return render(request, "messaging/settings.html", {"tab": "settings"})
