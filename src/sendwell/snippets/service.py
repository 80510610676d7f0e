"""Snippets: the workspace's saved subject and body text, inserted into steps in the editor.

Everyone in the workspace sees and inserts every snippet (that is what they are for); its
author or an admin changes or deletes it. A snippet is template text: its merge fields are
rendered with the step it was inserted into, so it is checked for syntax when saved.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendwell.campaigns import templates
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.models import Role, Snippet, User
from sendwell.snippets import repository as repo

MAX_NAME = 100
MAX_TEXT = 10_000
MAX_PER_WORKSPACE = 500


def snippets(db: Session, user: User) -> list[Snippet]:
    return repo.for_workspace(db, user.workspace_id)


def get_snippet(db: Session, user: User, snippet_id: int) -> Snippet:
    found = repo.get(db, user.workspace_id, snippet_id)
    if found is None:
        raise NotFound("This snippet does not exist.", code="unknown_snippet")
    return found


def create(db: Session, user: User, *, name: str, body: str) -> Snippet:
    name, body = _checked(db, user, name, body, current=None)
    if len(repo.for_workspace(db, user.workspace_id)) >= MAX_PER_WORKSPACE:
        raise Conflict(
            f"The workspace has {MAX_PER_WORKSPACE} snippets, the most it can keep: delete one "
            "you no longer use first.",
            code="too_many_snippets",
        )
    snippet = Snippet(workspace_id=user.workspace_id, name=name, body=body, created_by_id=user.id)
    db.add(snippet)
    db.flush()
    return snippet


def update(
    db: Session, user: User, snippet_id: int, *, name: str | None = None, body: str | None = None
) -> Snippet:
    snippet = _changeable(db, user, snippet_id)
    clean_name, clean_body = _checked(
        db,
        user,
        snippet.name if name is None else name,
        snippet.body if body is None else body,
        current=snippet,
    )
    snippet.name, snippet.body = clean_name, clean_body
    db.flush()
    return snippet


def delete(db: Session, user: User, snippet_id: int) -> None:
    db.delete(_changeable(db, user, snippet_id))
    db.flush()


def _changeable(db: Session, user: User, snippet_id: int) -> Snippet:
    """A snippet its author or an admin may change. Anyone else is told it does not exist,
    as for another workspace's: the answer never depends on whose it is."""
    snippet = repo.get(db, user.workspace_id, snippet_id)
    if snippet is None or (user.role is not Role.ADMIN and snippet.created_by_id != user.id):
        raise NotFound(
            "No snippet you can change has this id: only its author or an admin can change "
            "or delete a snippet.",
            code="unknown_snippet",
        )
    return snippet


def _checked(
    db: Session, user: User, name: str, body: str, *, current: Snippet | None
) -> tuple[str, str]:
    name = " ".join(name.split())
    body = body.replace("\r\n", "\n")
    if not name:
        raise InvalidInput("Give the snippet a name.", code="invalid_snippet")
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"Keep the snippet's name under {MAX_NAME} characters.", code="invalid_snippet"
        )
    if not body.strip():
        raise InvalidInput("The snippet's text is empty.", code="invalid_snippet")
    if len(body) > MAX_TEXT:
        raise InvalidInput(
            f"Keep the snippet's text under {MAX_TEXT:,} characters.", code="invalid_snippet"
        )
    templates.check_syntax(body, f"The snippet “{name}”")
    same = repo.named(db, user.workspace_id, name)
    if same is not None and same is not current:
        raise Conflict(
            f"The workspace already has a snippet named “{same.name}”: choose another name.",
            code="snippet_name_taken",
        )
    return name, body
