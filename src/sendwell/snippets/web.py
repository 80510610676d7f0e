"""The Snippets page: the workspace's saved text, to insert into steps in the editor."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes.web import load_alerts
from sendwell.models import Role, User
from sendwell.snippets import service
from sendwell.web.deps import get_db
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter(dependencies=[Depends(load_alerts)])
PAGE = "/snippets"


@router.get(PAGE)
def snippets_page(
    request: Request,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    return _page(request, db, user)


@router.post(PAGE)
def create_snippet(
    request: Request,
    name: str = Form(""),
    body: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        snippet = service.create(db, user, name=name, body=body)
    except SendwellError as error:
        return _page(
            request,
            db,
            user,
            form={"name": name, "body": body},
            error=error.message,
            status_code=error.status_code,
        )
    return redirect_with_flash(request, PAGE, f"Snippet “{snippet.name}” saved.")


@router.post(PAGE + "/{snippet_id}/edit")
def update_snippet(
    request: Request,
    snippet_id: int,
    name: str = Form(""),
    body: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    try:
        snippet = service.update(db, user, snippet_id, name=name, body=body)
    except SendwellError as error:
        if error.status_code == 404:
            raise
        return redirect_with_flash(request, PAGE, error.message, kind="error")
    return redirect_with_flash(request, PAGE, f"Snippet “{snippet.name}” saved.")


@router.post(PAGE + "/{snippet_id}/delete")
def delete_snippet(
    request: Request,
    snippet_id: int,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.delete(db, user, snippet_id)
    return redirect_with_flash(request, PAGE, "Snippet deleted.")


def _page(
    request: Request,
    db: Session,
    user: User,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "snippets/list.html",
        {
            "snippets": service.snippets(db, user),
            "may_change": lambda s: user.role is Role.ADMIN or s.created_by_id == user.id,
            "form": form or {},
            "error": error,
        },
        status_code=status_code,
    )
