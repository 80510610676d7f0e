"""Snippets: saved per workspace, read by all its members, changed by their author or an admin."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from sendwell.campaigns import templates
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.models import Role, User, Workspace
from sendwell.snippets import service
from tests.campaigns.test_service import make_user


@pytest.fixture
def ada(db: Session) -> User:
    return make_user(db)  # the workspace's admin


@pytest.fixture
def bob(db: Session, ada: User) -> User:
    return make_user(db, "bob@example.com", Role.MEMBER)


def test_crud_and_names_unique_in_the_workspace(db: Session, ada: User, bob: User) -> None:
    closing = service.create(
        db, bob, name="  Closing  line ", body="Talk soon,\r\n{{ sender_name }}"
    )
    assert (closing.name, closing.body) == ("Closing line", "Talk soon,\n{{ sender_name }}")
    service.create(
        db, ada, name="Availability", body="Free for a call {{ day | default('soon') }}?"
    )
    # Every member sees the workspace's snippets, by name.
    assert [s.name for s in service.snippets(db, ada)] == ["Availability", "Closing line"]
    assert [s.name for s in service.snippets(db, bob)] == ["Availability", "Closing line"]
    with pytest.raises(Conflict, match="already has a snippet named “Closing line”"):
        service.create(db, ada, name="closing LINE", body="x")
    service.update(db, bob, closing.id, body="Best,\n{{ sender_name }}")
    assert closing.body == "Best,\n{{ sender_name }}"
    service.delete(db, bob, closing.id)
    assert [s.name for s in service.snippets(db, bob)] == ["Availability"]


def test_bad_snippets_are_refused_with_the_reason(db: Session, ada: User) -> None:
    for name, body, reason in [
        ("", "text", "Give the snippet a name."),
        ("Empty", "  ", "The snippet's text is empty."),
        ("Broken", "Hi {{ first_name ", "The snippet “Broken”"),
        ("Long", "x" * 10_001, "under 10,000 characters"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            service.create(db, ada, name=name, body=body)
    assert service.snippets(db, ada) == []


def test_only_the_author_or_an_admin_changes_a_snippet(db: Session, ada: User, bob: User) -> None:
    carol = make_user(db, "carol@example.com", Role.MEMBER)
    mine = service.create(db, ada, name="Ada's", body="From Ada")
    theirs = service.create(db, bob, name="Bob's", body="From Bob")
    for snippet_id in (mine.id, 987_654):
        with pytest.raises(NotFound, match="only its author or an admin"):
            service.update(db, carol, snippet_id, body="Taken over")
        with pytest.raises(NotFound):
            service.delete(db, carol, snippet_id)
    service.update(db, ada, theirs.id, name="Bob's, edited")  # an admin may
    assert (mine.body, theirs.name) == ("From Ada", "Bob's, edited")


def test_another_workspace_sees_and_changes_nothing(db: Session, ada: User) -> None:
    ours = service.create(db, ada, name="Ours", body="Our text")
    other = Workspace(id=ada.workspace_id + 1, name="Elsewhere")
    db.add(other)
    db.flush()
    stranger = User(
        workspace_id=other.id, email="zed@example.com", password_hash="-", role=Role.ADMIN
    )
    db.add(stranger)
    db.flush()
    assert service.snippets(db, stranger) == []
    with pytest.raises(NotFound):
        service.update(db, stranger, ours.id, body="Taken over")
    with pytest.raises(NotFound):
        service.delete(db, stranger, ours.id)
    assert ours.body == "Our text"


def test_merge_fields_in_a_snippet_render_as_in_a_step(db: Session, ada: User) -> None:
    snippet = service.create(db, ada, name="Opener", body="Hi {{ first_name | default('there') }}")
    step_body = f"{snippet.body}, a role at {{{{ company }}}}."
    fields = templates.merge_fields({"first_name": "Grace", "company": "Navy"}, {})
    assert templates.render_text(step_body, fields, "Step 1 body") == "Hi Grace, a role at Navy."
