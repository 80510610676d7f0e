"""A refused save shows the editor again and changes nothing: what the service set before
it refused is undone (a savepoint), while the request still commits."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.models import Campaign, CatchUp
from tests.campaigns.test_web import connected_mailbox, editor_post
from tests.conftest import create_first_account


def test_a_refused_edit_keeps_the_saved_campaign(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    assert editor_post(client, "/campaigns/new", mailbox.id).status_code == 200
    campaign = db.scalars(select(Campaign)).one()
    path = f"/campaigns/{campaign.id}/edit"

    # The catch-up mode is set before its skip days are refused.
    response = editor_post(
        client, path, mailbox.id, name="Renamed", catch_up="shift", catch_up_skip_days="0"
    )

    assert response.status_code == 422
    assert "Skip days must be a whole number from 1 to 365." in html.unescape(response.text)
    db.expire_all()
    kept = db.get(Campaign, campaign.id)
    assert kept is not None
    assert (kept.name, kept.catch_up, kept.catch_up_skip_days) == (
        "Backend engineers",
        CatchUp.CATCH_UP,
        7,
    )
    # The same edit, made valid, is saved.
    assert editor_post(client, path, mailbox.id, name="Renamed").status_code == 200
    db.expire_all()
    assert db.get(Campaign, campaign.id).name == "Renamed"  # type: ignore[union-attr]
