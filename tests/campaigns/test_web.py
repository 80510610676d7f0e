"""The Campaigns tab and the campaign pages, driven like a browser through the real app."""

from __future__ import annotations

import html
import re

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import service
from sendwell.models import Campaign, CampaignStatus, Mailbox, MailboxStatus, User
from tests.conftest import create_first_account, csrf_from, post_form


def connected_mailbox(db: Session, email: str = "ada@gmail.test") -> Mailbox:
    user = db.scalars(select(User)).one()
    mailbox = Mailbox(
        workspace_id=user.workspace_id,
        owner_id=user.id,
        provider="google",
        subject=email,
        email=email,
        status=MailboxStatus.CONNECTED,
        display_name="Ada",
    )
    db.add(mailbox)
    db.commit()
    return mailbox


def editor_post(client: TestClient, path: str, mailbox_id: int, **extra: object) -> httpx.Response:
    data: dict[str, object] = {
        "name": "Backend engineers",
        "mailbox_id": str(mailbox_id),
        "start_delay_minutes": "20",
        "days": ["mon", "wed"],
        "start": "09:00",
        "end": "17:00",
        "timezone": "Europe/Paris",
        "step_subject": ["Hi {{ first_name | default('there') }}", ""],
        "step_body": ["Hello from {{ sender_name }}", "Just following up"],
        "step_delay": ["0", "3"],
        "step_unit": ["minutes", "days"],
        "action": "save",
    }
    data.update(extra)
    data["csrftoken"] = csrf_from(client.get(path).text)
    response: httpx.Response = client.post(path, data=data)
    return response


def test_empty_tab_invites_a_new_campaign(client: TestClient) -> None:
    create_first_account(client)
    page = client.get("/messaging/campaigns").text
    assert "No campaigns yet" in page
    assert 'href="/campaigns/new"' in page


def test_editor_without_an_account_says_to_link_one(client: TestClient) -> None:
    create_first_account(client)
    page = html.unescape(client.get("/campaigns/new").text)
    assert "Link an email account" in page


def test_create_a_two_step_campaign(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    response = editor_post(client, "/campaigns/new", mailbox.id)
    text = html.unescape(response.text)
    assert "“Backend engineers” is saved as a draft." in text
    campaign = db.scalars(select(Campaign)).one()
    assert campaign.status is CampaignStatus.DRAFT
    assert (campaign.schedule_days, campaign.timezone) == ("mon,wed", "Europe/Paris")
    listing = html.unescape(client.get("/messaging/campaigns").text)
    assert "Backend engineers" in listing
    assert ">Draft<" in listing
    assert ">Start</button>" in listing


def test_add_step_button_keeps_what_was_typed(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    response = editor_post(client, "/campaigns/new", mailbox.id, action="add_step")
    assert response.status_code == 200
    assert "Follow-up 2" in response.text
    assert "Just following up" in response.text
    assert db.scalars(select(Campaign)).all() == []


def test_template_error_is_shown_and_nothing_saved(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    response = editor_post(
        client, "/campaigns/new", mailbox.id, step_subject=["Hi {{ first_name ", ""]
    )
    assert response.status_code == 422
    assert "Step 1 subject" in html.unescape(response.text)
    assert db.scalars(select(Campaign)).all() == []


def test_start_pause_resume_from_the_menu(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    detail = client.get(f"/campaigns/{campaign.id}").text
    token = csrf_from(detail)
    refused = client.post(
        f"/campaigns/{campaign.id}/start",
        data={"csrftoken": token, "back": f"/campaigns/{campaign.id}"},
    )
    assert refused.status_code == 422
    assert "Add at least one recipient." in refused.text
    client.post(
        f"/campaigns/{campaign.id}/recipients",
        data={"csrftoken": token, "email": "grace@example.com", "first_name": "Grace"},
    )
    # Start shows who gets the first email, when and from where; nothing starts before.
    confirm = html.unescape(
        client.post(f"/campaigns/{campaign.id}/start", data={"csrftoken": token}).text
    )
    assert "Before anything is sent, here is what Start will do." in confirm
    assert 'data-recipients="1"' in confirm
    assert "ada@gmail.test" in confirm
    assert "(Europe/Paris)" in confirm
    db.expire_all()
    assert db.get(Campaign, campaign.id).status is CampaignStatus.DRAFT  # type: ignore[union-attr]
    started = client.post(
        f"/campaigns/{campaign.id}/start", data={"csrftoken": token, "confirmed": "1"}
    )
    assert "is active" in html.unescape(started.text)
    paused = client.post(f"/campaigns/{campaign.id}/pause", data={"csrftoken": token})
    text = html.unescape(paused.text)
    assert "is paused" in text
    assert "Paused by you." in text
    assert ">Resume</button>" in text
    # Resume shows what it will do first; nothing changes until it is confirmed.
    preview = html.unescape(
        client.post(f"/campaigns/{campaign.id}/resume", data={"csrftoken": token}).text
    )
    assert "Before anything is sent, here is what Resume will do." in preview
    assert "Arrived during the pause" in preview
    db.expire_all()
    assert db.get(Campaign, campaign.id).status is CampaignStatus.PAUSED  # type: ignore[union-attr]
    resumed = client.post(
        f"/campaigns/{campaign.id}/resume",
        data={"csrftoken": csrf_from(preview), "confirmed": "1", "catch_up": "catch_up"},
    )
    assert "active again and resumes from where it left off" in html.unescape(resumed.text)
    db.expire_all()
    assert db.get(Campaign, campaign.id).status is CampaignStatus.ACTIVE  # type: ignore[union-attr]


def test_resume_is_refused_while_the_account_needs_reauthentication(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    token = csrf_from(client.get(f"/campaigns/{campaign.id}").text)
    client.post(
        f"/campaigns/{campaign.id}/recipients",
        data={"csrftoken": token, "email": "grace@example.com"},
    )
    client.post(f"/campaigns/{campaign.id}/start", data={"csrftoken": token, "confirmed": "1"})
    client.post(f"/campaigns/{campaign.id}/pause", data={"csrftoken": token})
    box = db.get(Mailbox, mailbox.id)
    assert box is not None
    box.status = MailboxStatus.REAUTH_REQUIRED
    db.commit()
    refused = client.post(f"/campaigns/{campaign.id}/resume", data={"csrftoken": token})
    assert "ada@gmail.test needs reauthentication" in html.unescape(refused.text)
    db.expire_all()
    assert db.get(Campaign, campaign.id).status is CampaignStatus.PAUSED  # type: ignore[union-attr]


def test_preview_renders_for_a_recipient(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    token = csrf_from(client.get(f"/campaigns/{campaign.id}").text)
    for email, name in (("grace@example.com", "Grace"), ("alan@example.com", "")):
        client.post(
            f"/campaigns/{campaign.id}/recipients",
            data={"csrftoken": token, "email": email, "first_name": name},
        )
    page = html.unescape(client.get(f"/campaigns/{campaign.id}").text)
    assert "Hi Grace" in page
    assert "Hello from Ada" in page
    alan = re.search(r'<option value="(\d+)"[^>]*>alan@example.com', page)
    assert alan
    other = html.unescape(
        client.get(f"/campaigns/{campaign.id}", params={"step": 1, "recipient": alan.group(1)}).text
    )
    assert "Hi there" in other


def test_invalid_recipient_is_reported(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    response = post_form(
        client,
        f"/campaigns/{campaign.id}",
        f"/campaigns/{campaign.id}/recipients",
        {"email": "not-an-address"},
    )
    assert "not-an-address was not added: invalid address" in html.unescape(response.text)


def test_other_users_campaign_is_not_found(client: TestClient, db: Session) -> None:
    create_first_account(client)
    assert client.get("/campaigns/999").status_code == 404


def upload(client: TestClient, campaign_id: int, token: str, csv: bytes) -> str:
    """Upload a CSV file; the answer is its mapping page's HTML."""
    response = client.post(
        f"/campaigns/{campaign_id}/recipients/import",
        data={"csrftoken": token},
        files={"file": ("people.csv", csv, "text/csv")},
    )
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def mapping_url(page: str) -> str:
    found = re.search(r'action="(/campaigns/\d+/recipients/import/[^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_import_a_csv_file_and_see_what_was_skipped(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    token = csrf_from(client.get(f"/campaigns/{campaign.id}").text)
    csv = (
        "\ufeffEmail;First name;Company;Favourite Color\r\n"
        "grace@example.com;Grace;Navy;blue\r\n"
        "\r\n"
        "not-an-address;Bad;X;red\r\n"
        "GRACE@example.com;Again;Navy;green\r\n"
        '"alan@example.com";"Alan";"Bletchley; Park";"grey"\r\n'
    ).encode()
    mapping = upload(client, campaign.id, token, csv)
    assert "Map the columns of people.csv" in mapping
    response = client.post(
        mapping_url(mapping), data={"csrftoken": csrf_from(mapping), "skip_previous": "replied"}
    )
    text = html.unescape(response.text)
    assert response.status_code == 200
    assert "Imported 2 recipients; skipped 2." in text
    assert "Skipped: 1 duplicate in this list, 1 invalid address." in text
    assert "invalid address" in text
    assert "duplicate in this list" in text
    assert "Favourite Color → favourite_color" in text
    assert "Bletchley; Park" in text


def test_csv_without_an_email_column_imports_nothing(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    token = csrf_from(client.get(f"/campaigns/{campaign.id}").text)
    mapping = upload(client, campaign.id, token, b"name,company\nGrace,Navy\n")
    assert "No column was recognised as the email address" in mapping
    response = client.post(mapping_url(mapping), data={"csrftoken": csrf_from(mapping)})
    assert response.status_code == 422
    assert "No column holds the email address" in html.unescape(response.text)
    assert "Nothing was imported." in response.text


def test_csv_upload_without_the_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    for data in ({}, {"csrftoken": "forged"}):
        response = client.post(
            f"/campaigns/{campaign.id}/recipients/import",
            data=data,
            files={"file": ("p.csv", b"email\nx@example.com\n", "text/csv")},
        )
        assert response.status_code == 403
        assert "This form has expired" in response.text
    db.expire_all()
    assert client.get(f"/campaigns/{campaign.id}").text.count("x@example.com") == 0


def test_recipient_page_shows_their_sequence(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    post_form(
        client,
        f"/campaigns/{campaign.id}",
        f"/campaigns/{campaign.id}/recipients",
        {"email": "grace@example.com", "first_name": "Grace", "company": "Navy"},
    )
    page = client.get(f"/campaigns/{campaign.id}").text
    link = re.search(rf'href="(/campaigns/{campaign.id}/recipients/\d+)"', page)
    assert link
    detail = html.unescape(client.get(link.group(1)).text)
    assert "grace@example.com" in detail
    assert "Not Started" in detail
    assert "1. Hi {{ first_name | default('there') }}" in detail
    assert client.get(f"/campaigns/{campaign.id}/recipients/999999").status_code == 404


def test_the_tab_lists_fifty_campaigns_a_page_newest_first(client: TestClient, db: Session) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    user = db.scalars(select(User)).one()
    for number in range(1, 56):
        service.create_campaign(
            db,
            user,
            name=f"Campaign {number}",
            mailbox_id=mailbox.id,
            steps=[service.StepIn("Hello", "Hi")],
        )
    db.commit()

    def names(page: str) -> list[str]:
        return re.findall(r'class="strong">(Campaign \d+)</a>', page)

    first = client.get("/messaging/campaigns").text
    assert names(first) == [f"Campaign {n}" for n in range(55, 5, -1)]
    assert "1\u201350 of 55 campaigns · page 1 of 2" in first
    assert '<a href="?page=2" rel="next">Older</a>' in first
    assert 'rel="prev"' not in first

    second = client.get("/messaging/campaigns?page=2").text
    assert names(second) == [f"Campaign {n}" for n in range(5, 0, -1)]
    assert "51\u201355 of 55 campaigns · page 2 of 2" in second
    assert '<a href="?page=1" rel="prev">Newer</a>' in second
    assert 'rel="next"' not in second

    assert names(client.get("/messaging/campaigns?page=9").text) == names(second)
    for not_a_page in ("abc", "-1", "²"):
        assert names(client.get(f"/messaging/campaigns?page={not_a_page}").text) == names(first)
