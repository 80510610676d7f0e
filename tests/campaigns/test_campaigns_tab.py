"""The Campaigns tab: search by name, filter by status (archived too, with Restore), sort,
pages of 50 that keep the filters, the owner column for admins; the API's Restore."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.campaigns import service
from sendwell.models import Campaign, CampaignStatus, User
from tests.campaigns.test_web import connected_mailbox
from tests.conftest import create_first_account, csrf_from


def names(page: str) -> list[str]:
    return re.findall(r'class="strong">([^<]+)</a>', html.unescape(page))


def make(db: Session, name: str, status: CampaignStatus = CampaignStatus.DRAFT) -> Campaign:
    user = db.scalars(select(User)).one()
    mailbox_id = db.scalars(select(Campaign.mailbox_id)).first()
    if mailbox_id is None:
        mailbox_id = connected_mailbox(db).id
    campaign = service.create_campaign(
        db, user, name=name, mailbox_id=mailbox_id, steps=[service.StepIn("Hello", "Hi")]
    )
    if status is not CampaignStatus.DRAFT:
        # The statuses are set directly: the status machine has its own tests.
        campaign.status = status
    db.commit()
    return campaign


def test_search_filter_and_sort_keep_each_other_and_the_pages(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    for number in range(1, 56):
        make(db, f"Backend {number:02d}")
    make(db, "Frontend paused", CampaignStatus.PAUSED)
    make(db, "Design active", CampaignStatus.ACTIVE)
    make(db, "Old backend archived", CampaignStatus.ARCHIVED)

    everything = client.get("/messaging/campaigns").text
    assert "Old backend archived" not in names(everything)  # archived ones are filtered out
    assert "1\u201350 of 57 campaigns · page 1 of 2" in everything
    assert '<a href="?page=2" rel="next">Older</a>' in everything

    found = client.get("/messaging/campaigns", params={"q": "  BACKEND ", "sort": "name"})
    shown = names(found.text)
    assert shown == [f"Backend {n:02d}" for n in range(1, 51)]
    assert "1\u201350 of 55 campaigns · page 1 of 2" in found.text
    # The next page keeps the search and the sort.
    assert '<a href="?q=BACKEND&amp;sort=name&amp;page=2" rel="next">Next</a>' in found.text
    second = client.get("/messaging/campaigns?q=BACKEND&sort=name&page=2").text
    assert names(second) == [f"Backend {n:02d}" for n in range(51, 56)]
    assert 'value="BACKEND"' in second

    paused = names(client.get("/messaging/campaigns", params={"status": "paused"}).text)
    assert paused == ["Frontend paused"]
    archived = client.get("/messaging/campaigns", params={"status": "archived"}).text
    assert names(archived) == ["Old backend archived"]
    assert ">Restore</button>" in archived
    both = client.get("/messaging/campaigns?status=all&q=backend&sort=name&page=2").text
    assert names(both) == [*(f"Backend {n:02d}" for n in range(51, 56)), "Old backend archived"]

    nothing = html.unescape(client.get("/messaging/campaigns", params={"q": "zzz"}).text)
    assert "No campaigns match “zzz”." in nothing
    assert "No campaigns yet" not in nothing
    # A hand-edited address shows the default list rather than an error.
    odd = client.get("/messaging/campaigns", params={"status": "gone", "sort": "x"}).text
    assert names(odd) == names(everything)


def test_sort_by_emails_sent_and_by_latest_activity(client: TestClient, db: Session) -> None:
    create_first_account(client)
    quiet, busy = make(db, "Quiet"), make(db, "Busy")
    newest = make(db, "Newest")
    busy.status_changed_at = newest.created_at.replace(year=newest.created_at.year + 1)
    db.commit()
    by_activity = names(client.get("/messaging/campaigns?sort=activity").text)
    assert by_activity[0] == "Busy"
    assert names(client.get("/messaging/campaigns?sort=name").text) == ["Busy", "Newest", "Quiet"]
    assert names(client.get("/messaging/campaigns?sort=sent").text) == ["Newest", "Busy", "Quiet"]
    assert quiet.id < busy.id


def test_restore_from_the_archived_filter_returns_the_status_it_had(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    campaign = make(db, "Came back")
    page = client.get("/messaging/campaigns").text
    archived = client.post(f"/campaigns/{campaign.id}/archive", data={"csrftoken": csrf_from(page)})
    assert "“Came back” is archived." in html.unescape(archived.text)
    assert "Every campaign is archived." in html.unescape(archived.text)
    listing = client.get("/messaging/campaigns?status=archived").text
    restored = client.post(
        f"/campaigns/{campaign.id}/restore",
        data={"csrftoken": csrf_from(listing), "back": "/messaging/campaigns"},
    )
    text = html.unescape(restored.text)
    assert "“Came back” is restored." in text
    assert names(text) == ["Came back"]
    assert ">Draft<" in text
    db.expire_all()
    assert db.get(Campaign, campaign.id).status is CampaignStatus.DRAFT  # type: ignore[union-attr]
    again = client.post(f"/campaigns/{campaign.id}/restore", data={"csrftoken": csrf_from(text)})
    assert "Only an archived campaign can be restored." in html.unescape(again.text)


def test_admins_see_each_campaigns_owner(client: TestClient, db: Session) -> None:
    create_first_account(client)
    make(db, "Mine")
    page = client.get("/messaging/campaigns").text
    assert '<th scope="col">Owner</th>' in page
    assert "Ada Lovelace" in page


def test_the_api_restores_an_archived_campaign(client: TestClient, db: Session) -> None:
    create_first_account(client)
    campaign = make(db, "Via the API", CampaignStatus.ARCHIVED)
    campaign.archived_from = CampaignStatus.COMPLETED
    user = db.scalars(select(User)).one()
    secret = accounts.create_api_token(db, user, "test")[1]
    db.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    answer = client.post(f"/api/v1/campaigns/{campaign.id}/restore", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["status"] == "completed"
    refused = client.post(f"/api/v1/campaigns/{campaign.id}/restore", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith("Only an archived campaign")


def test_the_api_lists_campaigns_by_name_status_and_sort(client: TestClient, db: Session) -> None:
    create_first_account(client)
    make(db, "Backend b")
    make(db, "backend A", CampaignStatus.ARCHIVED)
    make(db, "Design")
    user = db.scalars(select(User)).one()
    secret = accounts.create_api_token(db, user, "test")[1]
    db.commit()
    headers = {"Authorization": f"Bearer {secret}"}

    def listed(**params: str) -> list[str]:
        answer = client.get("/api/v1/campaigns", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [campaign["name"] for campaign in answer.json()]

    assert listed() == ["Design", "backend A", "Backend b"]
    assert listed(q="BACKEND", sort="name") == ["backend A", "Backend b"]
    assert listed(status="archived") == ["backend A"]
    assert listed(q="backend", status="draft") == ["Backend b"]
    refused = client.get("/api/v1/campaigns", params={"status": "gone"}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("status must be one of draft")
    wrong_sort = client.get("/api/v1/campaigns", params={"sort": "size"}, headers=headers)
    assert wrong_sort.json()["error"]["message"] == "sort must be one of created, name, sent."
