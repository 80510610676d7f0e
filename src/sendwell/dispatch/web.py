"""Public unsubscribe pages: no sign-in, the signed link is the authority."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.dispatch.unsubscribe import unsubscribe
from sendwell.web.deps import get_db
from sendwell.web.pages import render

router = APIRouter()


def _links(request: Request) -> UnsubscribeLinks:
    settings = request.app.state.settings
    return UnsubscribeLinks(settings.base_url, settings.secret_key)


@router.get("/u/{token}")
def unsubscribe_page(request: Request, token: str) -> Response:
    found = _links(request).read(token)
    if found is None:
        return render(request, "unsubscribe.html", {"invalid": True}, status_code=404)
    return render(request, "unsubscribe.html", {"email": found[1], "token": token})


@router.post("/u/{token}")
def unsubscribe_now(
    request: Request, token: str, db: Session = Depends(get_db, scope="function")
) -> Response:
    """Both the page's button and RFC 8058 one-click posts from mail clients land here."""
    found = _links(request).read(token)
    if found is None:
        return render(request, "unsubscribe.html", {"invalid": True}, status_code=404)
    workspace_id, email = found
    unsubscribe(db, workspace_id, email)
    return render(request, "unsubscribe.html", {"email": email, "done": True})
