"""The log watch (tests/security/log_watch.py) sees each test's logs and would find a leak.

Every test of the suite ends with its log lines searched for the secrets it used; these tests
show that the search is real: the lines are there, rendered as in production at DEBUG, and a
secret among them — by value or by shape — is reported.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from sendwell.config import Settings
from sendwell.kit.logging import get_logger
from tests.conftest import STRONG_PASSWORD, create_first_account
from tests.security import log_watch


def test_each_tests_logs_are_kept_as_production_renders_them(client: TestClient) -> None:
    create_first_account(client)
    get_logger("sendwell.probe").debug("probe", detail="seen at DEBUG")
    lines = [json.loads(line) for line in log_watch.WATCH.lines]
    assert ("POST", "/setup", 303) in {
        (line.get("method"), line.get("path"), line.get("status")) for line in lines
    }
    assert {"event": "probe", "detail": "seen at DEBUG"}.items() <= next(
        line for line in lines if line["event"] == "probe"
    ).items()


def test_a_secret_the_test_used_is_found(client: TestClient, settings: Settings) -> None:
    create_first_account(client)
    session = client.cookies["sendwell_session"]
    found = log_watch.check(
        [f'{{"event": "oops", "cookie_value": "{session}"}}', f"key {settings.token_key_list[0]}"],
        [client, settings],
        [],
    )
    assert len(found) == 2
    assert all(session not in line for line in found)


def test_secrets_are_recognised_by_shape() -> None:
    ciphertext = Fernet(Fernet.generate_key()).encrypt(b"refresh-token").decode()
    lines = [
        "token sw_" + "a" * 43,
        f"stored {ciphertext}",
        "provider said ya29." + "b" * 43,
        "code 4/0A" + "c" * 43,
        f"password {STRONG_PASSWORD}",
        "an ordinary line with /u/abc.def and request_id 0123456789abcdef",
    ]
    found = log_watch.check(lines, [], [STRONG_PASSWORD])
    assert len(found) == 5
    assert not any("ordinary" in line for line in found)


def test_redacted_keys_never_reach_the_lines() -> None:
    get_logger("sendwell.probe").info(
        "probe", token="sw_" + "d" * 43, password=STRONG_PASSWORD, access_token="ya29.x"
    )
    assert log_watch.check(log_watch.WATCH.lines, [], [STRONG_PASSWORD]) == []
    assert '"token": "[redacted]"' in log_watch.WATCH.lines[-1]
