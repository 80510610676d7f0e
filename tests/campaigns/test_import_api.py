"""/api/v1: merge fields checked at save, and the CSV import with a mapping and history."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.models import Enrollment, EnrollmentStatus, Role
from tests.campaigns.test_api import (
    Caller,
    add_recipients,
    caller,
    campaign_body,
    create,
    error_of,
)


@pytest.fixture
def ada(db: Session) -> Caller:
    """The workspace admin, with a connected mailbox and a token."""
    return caller(db, "ada@example.com", Role.ADMIN, "ada@gmail.test")


CSV = b"email,first name,role\nrita@example.com,Rita,Backend\nnia@example.com,Nia,\n"


def upload(
    client: TestClient, who: Caller, campaign_id: int, data: bytes, **form: list[str]
) -> dict:
    response = client.post(
        f"/api/v1/campaigns/{campaign_id}/recipients/import",
        files={"file": ("people.csv", data, "text/csv")},
        data=form,
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_a_typo_is_refused_at_save_with_a_suggestion(client: TestClient, ada: Caller) -> None:
    steps = [{"subject": "Hi {{ first_name | default('') }}", "body": "At {{ compnay }}?"}]
    response = client.post(
        "/api/v1/campaigns", json=campaign_body(ada.mailbox.id, steps=steps), headers=ada.headers
    )
    error = error_of(response, 422, "unknown_merge_field")
    assert error["message"] == (
        "{{ compnay }} (step 1 body) is not a merge field: did you mean {{ company }}?"
    )


def test_put_warns_once_per_field_with_the_number_of_recipients(
    client: TestClient, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    upload(client, ada, cid, CSV)
    steps = [{"subject": "Hi {{ first_name }}", "body": "Your {{ role }} work"}]
    response = client.put(
        f"/api/v1/campaigns/{cid}",
        json=campaign_body(ada.mailbox.id, steps=steps),
        headers=ada.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["field_warnings"] == [
        "{{ role }} is empty for 1 of 2 recipients (step 1 body): Start is refused until they "
        'have a value, or give a default: {{ role | default("…") }}.'
    ]
    steps = [{"subject": "Hi", "body": "Your {{ rol }} work"}]
    response = client.put(
        f"/api/v1/campaigns/{cid}",
        json=campaign_body(ada.mailbox.id, steps=steps),
        headers=ada.headers,
    )
    assert "did you mean {{ role }}?" in error_of(response, 422, "unknown_merge_field")["message"]


def test_the_import_maps_like_the_cli_and_skips_history(
    client: TestClient, db: Session, ada: Caller
) -> None:
    earlier = create(client, ada, name="Winter")["id"]
    add_recipients(client, ada, earlier, {"email": "rita@example.com"})
    db.execute(
        update(Enrollment)
        .where(Enrollment.email == "rita@example.com")
        .values(status=EnrollmentStatus.REPLIED, steps_sent=1)
    )
    db.commit()
    cid = create(client, ada, name="Spring")["id"]
    report = upload(client, ada, cid, CSV, map=["role=title"])
    assert report["added"] == 1
    assert report["skipped"] == [
        {"row": 2, "email": "rita@example.com", "reason": "replied in another campaign (“Winter”)"}
    ]
    assert report["skipped_by_reason"] == {"replied in another campaign": 1}
    assert report["columns"] == {"email": "email", "first name": "first_name", "role": "title"}
    assert report["summary"] == "Added 1 recipient; skipped 1 (1 replied in another campaign)."

    again = create(client, ada, name="Summer")["id"]
    report = upload(client, ada, again, CSV, skip_previous=["none"])
    assert report["added"] == 2
    # Unmapped, "role" keeps its own name.
    assert report["columns"]["role"] == "role"
    rita = db.scalars(
        select(Enrollment).where(Enrollment.campaign_id == again, Enrollment.email.like("rita%"))
    ).one()
    assert (rita.title, rita.fields) == ("", {"role": "Backend"})

    response = client.post(
        f"/api/v1/campaigns/{again}/recipients/import",
        files={"file": ("people.csv", CSV, "text/csv")},
        data={"skip_previous": ["called"]},
        headers=ada.headers,
    )
    assert (
        "Unknown history to skip: called"
        in error_of(response, 422, "invalid_skip_previous")["message"]
    )
    response = client.post(
        f"/api/v1/campaigns/{again}/recipients/import", data={}, headers=ada.headers
    )
    error_of(response, 422, "no_file")
