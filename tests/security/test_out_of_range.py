"""Values the database cannot hold and addresses the API cannot parse are clear 4xx answers.

Found by the schema-driven tests (test_api_schema.py) and kept here as plain examples: an id
beyond the database's integers used to be a 500 on both backends, and an API address with a
line break in it used to get the HTML "page not found".
"""

from __future__ import annotations

from tests.security.conftest import Tenants

TOO_LARGE = [2**63, 10**20]  # beyond both databases' integers


def test_an_id_too_large_to_store_is_refused_by_the_api(tenants: Tenants) -> None:
    for number in TOO_LARGE:
        response = tenants.alice.client.get(
            f"/api/v1/campaigns/{number}", headers=tenants.alice.api_headers()
        )
        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "out_of_range",
            "message": "A value in the request is larger than Sendwell can store.",
        }


def test_an_id_too_large_to_store_is_a_page_that_says_so(tenants: Tenants) -> None:
    for number in TOO_LARGE:
        response = tenants.alice.client.get(f"/campaigns/{number}")
        assert response.status_code == 422
        assert "larger than Sendwell can store" in response.text
    assert tenants.alice.client.get(f"/campaigns/{tenants.owned.campaign_id}").status_code == 200


def test_an_api_address_with_a_line_break_is_a_json_404(tenants: Tenants) -> None:
    response = tenants.alice.client.post(
        "/api/v1/mailboxes/a%0Ab/resume-campaigns", headers=tenants.alice.api_headers()
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
