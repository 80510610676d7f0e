"""The Gmail schema check catches what the discovery document forbids."""

from __future__ import annotations

import json

from tests.sandbox.gmail_schema import exchange_problems

PROFILE = "/sandbox/google/gmail/v1/users/me/profile"
SEND = "/sandbox/google/gmail/v1/users/me/messages/send"


def answer(path: str, body: object, method: str = "GET", request: object = None) -> list[str]:
    sent = json.dumps(request).encode() if request is not None else b""
    return exchange_problems(method, path, sent, 200, json.dumps(body).encode())


def test_a_conforming_profile_passes() -> None:
    body = {"emailAddress": "a@gmail.test", "messagesTotal": 1, "threadsTotal": 1}
    assert answer(PROFILE, {**body, "historyId": "1001"}) == []


def test_an_int64_sent_as_a_json_number_is_caught() -> None:
    body = {"emailAddress": "a@gmail.test", "historyId": 1001}
    assert answer(PROFILE, body) == [
        "gmail.users.getProfile response.historyId: expected a string (uint64), got 1001"
    ]


def test_unknown_fields_and_wrong_nested_types_are_caught() -> None:
    message = {
        "id": "m1",
        "internalDate": "soon",
        "payload": {"headers": [{"name": "To", "value": 5}]},
        "colour": "blue",
    }
    problems = answer("/sandbox/google/gmail/v1/users/me/messages/m1", message)
    assert problems == [
        "gmail.users.messages.get response.internalDate: expected a decimal int64 in a string, "
        "got 'soon'",
        "gmail.users.messages.get response.payload.headers[0].value: expected a string (text), "
        "got 5",
        "gmail.users.messages.get response.colour: not in the schema",
    ]


def test_a_send_without_raw_is_caught_in_the_request() -> None:
    problems = answer(SEND, {"id": "m1"}, "POST", {"threadId": "t1"})
    assert problems == [
        "gmail.users.messages.send request.raw: required for gmail.users.messages.send"
    ]


def test_an_unknown_path_is_reported() -> None:
    assert answer("/sandbox/google/gmail/v1/users/me/nonsense", {}) == [
        "GET /sandbox/google/gmail/v1/users/me/nonsense: no such Gmail method in the discovery "
        "document"
    ]


def test_error_answers_are_not_checked() -> None:
    problems = exchange_problems("GET", PROFILE, b"", 401, b'{"error": {"code": 401}}')
    assert problems == []
