"""/api/v1 authentication, errors as JSON, and API tokens."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.accounts import service
from sendwell.models import ApiToken, Role
from tests.conftest import STRONG_PASSWORD


def make_token(db: Session, email: str = "ada@example.com", role: Role = Role.ADMIN) -> str:
    user = service.create_user(db, email=email, password=STRONG_PASSWORD, role=role)
    _token, plaintext = service.create_api_token(db, user, "tests")
    db.commit()
    return plaintext


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_token_is_a_401_json_error(client: TestClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "missing_token"
    assert "Authorization" in response.json()["error"]["message"]


def test_wrong_token_is_a_401_json_error(client: TestClient, db: Session) -> None:
    make_token(db)
    response = client.get("/api/v1/me", headers=bearer("sw_not-a-real-token"))
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_token", "message": "The API token is not valid or was revoked."}
    }


def test_token_identifies_its_user(client: TestClient, db: Session) -> None:
    token = make_token(db)
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"
    assert response.json()["role"] == "admin"
    assert "password_hash" not in response.json()


def test_tokens_are_stored_hashed(client: TestClient, db: Session) -> None:
    token = make_token(db)
    stored = db.scalars(select(ApiToken)).one()
    assert token not in (stored.token_hash, stored.hint, stored.name)
    assert stored.hint == token[-4:]


def test_create_list_and_revoke_tokens(client: TestClient, db: Session) -> None:
    token = make_token(db)
    created = client.post("/api/v1/tokens", json={"name": "nightly export"}, headers=bearer(token))
    assert created.status_code == 201
    new_token = created.json()["token"]
    assert new_token.startswith("sw_")
    listing = client.get("/api/v1/tokens", headers=bearer(new_token)).json()
    assert [item["name"] for item in listing] == ["tests", "nightly export"]
    assert all("token" not in item for item in listing)

    revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=bearer(token))
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(new_token)).status_code == 401


def test_malformed_json_is_a_422_json_error_and_writes_nothing(
    client: TestClient, db: Session
) -> None:
    token = make_token(db)
    response = client.post(
        "/api/v1/tokens",
        content=b'{"name": "half',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "malformed_json"
    assert response.json()["error"]["message"] == "The request body is not valid JSON."
    assert db.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_invalid_body_names_the_field(client: TestClient, db: Session) -> None:
    token = make_token(db)
    response = client.post("/api/v1/tokens", json={"label": "x"}, headers=bearer(token))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("name:")


def test_cannot_revoke_another_users_token(client: TestClient, db: Session) -> None:
    ada = make_token(db)
    bob = make_token(db, "bob@example.com", Role.MEMBER)
    ada_token_id = client.get("/api/v1/tokens", headers=bearer(ada)).json()[0]["id"]
    response = client.delete(f"/api/v1/tokens/{ada_token_id}", headers=bearer(bob))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_token"
    assert client.get("/api/v1/me", headers=bearer(ada)).status_code == 200


def test_unknown_endpoint_is_a_404_json_error(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_and_offline_docs(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "Sendwell API"
    assert "/me" in spec["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/static/vendor/swagger-ui-bundle.js").status_code == 200


def test_api_ignores_the_browser_session(client: TestClient, db: Session) -> None:
    make_token(db)
    from tests.conftest import post_form

    post_form(
        client, "/sign-in", "/sign-in", {"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert "sendwell_session" in client.cookies
    assert client.get("/api/v1/me").status_code == 401
