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
    return UnsubscribeLinks(settings.base_url, settings.secret_key, settings.unsubscribe_lifetime)


@router.get("/u/{token}")
def unsubscribe_page(request: Request, token: str) -> Response:
    links = _links(request)
    found = links.read(token)
    if found is None:
        return _not_valid(request, links, token)
    return render(request, "unsubscribe.html", {"email": found[1], "token": token})


def _not_valid(request: Request, links: UnsubscribeLinks, token: str) -> Response:
    context = {"invalid": True, "expired": links.expired(token)}
    return render(request, "unsubscribe.html", context, status_code=404)


@router.post("/u/{token}")
def unsubscribe_now(
    request: Request, token: str, db: Session = Depends(get_db, scope="function")
) -> Response:
    """Both the page's button and RFC 8058 one-click posts from mail clients land here."""
    links = _links(request)
    found = links.read(token)
    if found is None:
        return _not_valid(request, links, token)
    workspace_id, email = found
    unsubscribe(db, workspace_id, email)
    return render(request, "unsubscribe.html", {"email": email, "done": True})
