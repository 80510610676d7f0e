"""GET /healthz reports the database's real state."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from sendwell.app import create_app
from tests.conftest import make_settings


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "sendwell.db"
    with TestClient(create_app(make_settings(f"sqlite:///{missing}"))) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_pages_carry_security_headers(client: TestClient) -> None:
    headers = client.get("/setup").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-request-id"]
