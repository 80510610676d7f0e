"""One structured line per request, and no secret in any line."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sendwell.kit.logging import configure_logging, get_logger
from tests.conftest import STRONG_PASSWORD, create_first_account


def test_each_request_logs_one_json_line_without_secrets(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    create_first_account(client, password=STRONG_PASSWORD)
    client.get("/messaging/settings?code=oauth-code-123")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    requests = [line for line in lines if line["event"] == "request"]
    assert {"method", "path", "status", "duration_ms", "request_id"} <= requests[-1].keys()
    assert ("POST", "/setup", 303) in {(r["method"], r["path"], r["status"]) for r in requests}
    assert requests[-1]["path"] == "/messaging/settings"
    everything = json.dumps(lines)
    assert STRONG_PASSWORD not in everything
    assert "oauth-code-123" not in everything
    session_cookie = client.cookies.get("sendwell_session")
    assert session_cookie
    assert session_cookie not in everything


def test_an_error_in_the_json_log_carries_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An operator reading the log of a failed request finds where it failed."""
    configure_logging("INFO", "json")
    try:
        int("seven")
    except ValueError:
        get_logger("sendwell.test").exception("request_failed")
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: invalid literal for int() with base 10: 'seven'" in line["exception"]
