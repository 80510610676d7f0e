"""Schemathesis against `/api/v1/openapi.json`: no 5xx, and every answer is what the schema says.

Every operation of the API document is called with requests generated from it — valid ones
and deliberately invalid ones — as a signed-in client whose workspace has a linked mailbox and
a campaign with a recipient, so valid requests also reach real objects (their ids are swapped
in for some of the generated ones). Each answer must not be a server error, must have a status
code, content type, headers and body the document declares, and an invalid request must be
refused. The number of examples per operation is bounded to keep the suite quick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, select

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.campaigns import recipients, service
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.models import Enrollment, Mailbox, User
from tests.conftest import create_first_account
from tests.mailboxes.conftest import link

EXAMPLES_PER_OPERATION = 12
# Operations that connect to servers named in the request: generated requests would make this
# machine open connections to arbitrary hosts. tests/imap_smtp/ covers them against its own.
CONNECTS_OUT = {"POST /mailboxes/link-server": "signs in to the IMAP and SMTP servers given"}
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class ApiUnderTest:
    schema: Any
    headers: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
def api(security_settings: Settings, engine: Engine) -> Iterator[ApiUnderTest]:
    app = create_app(security_settings, engine=engine)
    with TestClient(app) as client:
        create_first_account(client)
        link(client, "ada@gmail.test")
        with session_scope(app.state.session_factory) as db:
            user = db.scalars(select(User)).one()
            mailbox_id = db.scalars(select(Mailbox.id)).one()
            campaign = service.create_campaign(
                db,
                user,
                name="Schema",
                mailbox_id=mailbox_id,
                steps=[service.StepIn("Hi {{ first_name }}", "Hello")],
            )
            recipients.add_recipients(
                db, user, campaign.id, [recipients.RecipientIn("grace@example.com", "Grace")]
            )
            enrollment_id = db.scalars(select(Enrollment.id)).one()
            _, plaintext = accounts.create_api_token(db, user, "schemathesis")
            spare, _ = accounts.create_api_token(db, user, "may be revoked")
            ids = {
                "mailbox_id": mailbox_id,
                "campaign_id": campaign.id,
                "recipient_id": enrollment_id,
                "token_id": spare.id,
            }
        yield ApiUnderTest(
            schemathesis.openapi.from_asgi("/api/v1/openapi.json", app),
            {"Authorization": f"Bearer {plaintext}"},
            ids,
        )


def _with_real_ids(ids: dict[str, int]) -> Callable[[Case], Case]:
    def swap(case: Case) -> Case:
        for name in list(case.path_parameters or {}):
            if name in ids:
                case.path_parameters[name] = ids[name]
        return case

    return swap


def _operations(api: ApiUnderTest) -> list[Any]:
    operations = [result.ok() for result in api.schema.get_all_operations()]
    assert set(CONNECTS_OUT) <= {operation.label for operation in operations}
    return [operation for operation in operations if operation.label not in CONNECTS_OUT]


def _run(api: ApiUnderTest, operation: Any, mode: GenerationMode) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    checks = CHECKS
    if mode is GenerationMode.POSITIVE:
        strategy = st.one_of(strategy, strategy.map(_with_real_ids(api.ids)))
    else:
        checks = [*CHECKS, negative_data_rejection]

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Case) -> None:
        # The token goes into the case itself, so schemathesis judges the request as sent: a
        # case whose only invalid part was a missing or malformed Authorization header is valid.
        headers = CaseInsensitiveDict(case.headers or {})
        headers.update(api.headers)
        case.headers = headers
        case.call_and_validate(checks=checks)

    call()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(api: ApiUnderTest, mode: GenerationMode) -> None:
    operations = _operations(api)
    assert len(operations) >= 20, "the OpenAPI document lists fewer operations than expected"
    failures = []
    for operation in operations:
        try:
            _run(api, operation, mode)
        except Exception as error:  # every operation is tried; all failures are reported
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
