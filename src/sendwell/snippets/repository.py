"""Every query snippets run."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.models import Snippet


def for_workspace(db: Session, workspace_id: int) -> list[Snippet]:
    return list(
        db.scalars(
            select(Snippet)
            .where(Snippet.workspace_id == workspace_id)
            .order_by(func.lower(Snippet.name), Snippet.id)
        )
    )


def get(db: Session, workspace_id: int, snippet_id: int) -> Snippet | None:
    return db.scalars(
        select(Snippet).where(Snippet.id == snippet_id, Snippet.workspace_id == workspace_id)
    ).one_or_none()


def named(db: Session, workspace_id: int, name: str) -> Snippet | None:
    return db.scalars(
        select(Snippet).where(
            Snippet.workspace_id == workspace_id, func.lower(Snippet.name) == name.lower()
        )
    ).first()
