"""Safer defaults in the editor: weekdays ticked, the browser's time zone, no day refused."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import service
from sendwell.models import Campaign, User
from tests.campaigns.test_web import connected_mailbox, editor_post
from tests.conftest import create_first_account


def ticked_days(page: str) -> list[str]:
    return re.findall(r'id="day-(\w+)" name="days" value="\w+" checked', page)


def test_a_new_campaign_sends_on_weekdays_in_the_browsers_time_zone(client: TestClient) -> None:
    create_first_account(client)
    page = client.get("/campaigns/new").text
    assert ticked_days(page) == ["mon", "tue", "wed", "thu", "fri"]
    # The editor's script puts the browser's zone in the field; without it, UTC stays valid.
    assert '<select id="timezone" name="timezone" data-browser-zone>' in page
    assert '<script src="/static/editor.js" defer></script>' in page
    assert "none ticked: every day" not in page


def test_no_day_ticked_is_refused_not_every_day(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    refused = editor_post(client, "/campaigns/new", mailbox.id, days=[])
    assert refused.status_code == 422
    assert "Tick at least one day to send on" in html.unescape(refused.text)
    assert db.scalars(select(Campaign)).all() == []
    # The form comes back as typed, keeping the zone the user chose.
    assert "data-browser-zone" not in refused.text


def test_a_campaign_without_days_opens_with_every_day_ticked(
    client: TestClient, db: Session
) -> None:
    """Made by the API, where no days means every day: the editor shows all seven."""
    create_first_account(client)
    mailbox = connected_mailbox(db)
    user = db.scalars(select(User)).one()
    campaign = service.create_campaign(
        db, user, name="Any day", mailbox_id=mailbox.id, steps=[service.StepIn("Hi", "Hello")]
    )
    db.commit()
    page = client.get(f"/campaigns/{campaign.id}/edit").text
    assert ticked_days(page) == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
