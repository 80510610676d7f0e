"""JSON routes for the workspace's snippets."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.models import User
from sendwell.snippets import service
from sendwell.snippets.schemas import SnippetIn, SnippetOut, SnippetPatch
from sendwell.web.deps import get_db

router = APIRouter(prefix="/snippets", tags=["snippets"])


@router.get("", response_model=list[SnippetOut], summary="The workspace's snippets, by name")
def list_snippets(
    user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> list[SnippetOut]:
    return [SnippetOut.model_validate(s) for s in service.snippets(db, user)]


@router.post("", response_model=SnippetOut, status_code=201, summary="Save a snippet")
def create_snippet(
    body: SnippetIn, user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> SnippetOut:
    return SnippetOut.model_validate(service.create(db, user, name=body.name, body=body.body))


@router.patch(
    "/{snippet_id}", response_model=SnippetOut, summary="Rename or rewrite (its author or an admin)"
)
def update_snippet(
    snippet_id: int,
    body: SnippetPatch,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> SnippetOut:
    return SnippetOut.model_validate(
        service.update(db, user, snippet_id, name=body.name, body=body.body)
    )


@router.delete("/{snippet_id}", status_code=204, summary="Delete (its author or an admin)")
def delete_snippet(
    snippet_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.delete(db, user, snippet_id)
    return Response(status_code=204)
