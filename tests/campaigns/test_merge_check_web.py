"""The editor's Save: a typo refused with a suggestion, an empty field one warning with its count,
and Start's problems one line each."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns.recipients import RecipientIn, add_recipients
from sendwell.models import Campaign, User
from tests.campaigns.test_web import connected_mailbox, editor_post
from tests.conftest import create_first_account, csrf_from


def test_save_refuses_a_typo_and_warns_about_an_empty_field(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    response = editor_post(
        client, "/campaigns/new", mailbox.id, step_body=["At {{ compnay }}?", "Again"]
    )
    assert response.status_code == 422
    assert "{{ compnay }} (step 1 body) is not a merge field: did you mean {{ company }}?" in (
        html.unescape(response.text)
    )
    assert db.scalars(select(Campaign)).all() == []

    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    user = db.scalars(select(User)).one()
    add_recipients(
        db,
        user,
        campaign.id,
        [RecipientIn(f"r{i}@example.com", title="" if i < 3 else "CTO") for i in range(20)],
    )
    db.commit()
    path = f"/campaigns/{campaign.id}/edit"
    response = editor_post(
        client, path, mailbox.id, step_body=["As a {{ title }}…", "Still a {{ title }}?"]
    )
    page = html.unescape(response.text)
    assert "Changes saved. {{ title }} is empty for 3 of 20 recipients (step 1 body, " in page
    assert page.count("is empty for") == 1

    # Start lists the problem once, with the number of recipients it concerns.
    response = client.post(
        f"/campaigns/{campaign.id}/start",
        data={"csrftoken": csrf_from(page), "back": f"/campaigns/{campaign.id}"},
    )
    text = html.unescape(response.text)
    assert "The campaign cannot start yet: 1 problem to fix." in text
    assert "{{ title }} is empty for 3 of 20 recipients (step 1 body, step 2 body)." in text
    assert 'First: <span class="mono">r0@example.com</span>.' in text
