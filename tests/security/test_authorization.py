"""Every route, read from the live route table, tried as someone who must not reach Alice's data.

Another member of her workspace (Bob) and the admin of another workspace (Carol) get 403 or 404
for every route naming one of Alice's objects — the same answer as for an object that does not
exist — and see none of her data anywhere; nobody signed in gets past the sign-in page or the
API's 401; and after all of it, Alice's objects are exactly as they were.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.config import Settings
from tests.security.conftest import CAMPAIGN_NAME, MAILBOX, MARKERS, Identity, Tenants
from tests.security.routes import PUBLIC, ROUTES, calls, form_token, served_routes


def _leaks(response: httpx.Response) -> list[str]:
    shown = response.text + response.headers.get("location", "")
    return [marker for marker in MARKERS if marker in shown]


def test_every_route_is_classified(security_settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(security_settings, engine=engine)) as client:
        served = served_routes(client.app)  # type: ignore[arg-type]
    unclassified = sorted(served - ROUTES.keys())
    assert not unclassified, (
        f"New routes {unclassified}: add each to ROUTES in tests/security/routes.py as PUBLIC, "
        "OWN or an object case (how to fill its ids and body), so that the authorization, "
        "CSRF and anonymous-access tests cover it."
    )
    stale = sorted(ROUTES.keys() - served)
    assert not stale, f"ROUTES in tests/security/routes.py lists routes that are gone: {stale}"


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_nobody_else_reaches_an_object(tenants: Tenants, who: str) -> None:
    intruder: Identity = getattr(tenants, who)
    before = tenants.snapshot()
    problems = []
    for call in calls(served_routes(tenants.app), "object"):
        response = call.send(intruder, tenants.owned)
        missing = call.send(intruder, tenants.owned, missing=True)
        where = f"{call.method} {call.url(tenants.owned)} as {intruder.name}"
        if response.status_code not in call.case.refusals:
            problems.append(f"{where}: {response.status_code}, expected {call.case.refusals}")
        if response.status_code != missing.status_code:
            problems.append(
                f"{where}: {response.status_code}, but {missing.status_code} for an object "
                "that does not exist (the difference tells the object exists)"
            )
        if leaked := _leaks(response):
            problems.append(f"{where}: the answer shows {leaked}")
    assert not problems, "\n".join(problems)
    assert tenants.snapshot() == before


@pytest.mark.parametrize("who", ["bob", "carol", "anonymous"])
def test_nobody_else_sees_alices_data_on_their_own_pages(tenants: Tenants, who: str) -> None:
    viewer: Identity = getattr(tenants, who)
    before = tenants.snapshot()
    problems = []
    kinds = ("own", "public") if who != "anonymous" else ("public",)
    for call in [c for kind in kinds for c in calls(served_routes(tenants.app), kind)]:
        response = call.send(viewer, tenants.owned)
        where = f"{call.method} {call.url(tenants.owned)} as {viewer.name}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.status_code}")
        if leaked := _leaks(response):
            problems.append(f"{where}: the answer shows {leaked}")
    assert not problems, "\n".join(problems)
    assert tenants.snapshot() == before


def test_nobody_signed_in_is_sent_to_sign_in_or_refused(tenants: Tenants) -> None:
    problems = []
    served = served_routes(tenants.app)
    for call in calls(served, "own") + calls(served, "object"):
        response = call.send(tenants.anonymous, tenants.owned)
        where = f"{call.method} {call.url(tenants.owned)}"
        if call.path.startswith("/api/"):
            if response.status_code != 401 or response.json()["error"]["code"] != "missing_token":
                problems.append(f"{where}: {response.status_code} {response.text[:120]}")
        elif response.status_code != 303 or not response.headers["location"].startswith("/sign-in"):
            problems.append(f"{where}: {response.status_code}, not sent to the sign-in page")
        if leaked := _leaks(response):
            problems.append(f"{where}: the answer shows {leaked}")
    assert not problems, "\n".join(problems)


def test_the_api_ignores_the_session_cookie(tenants: Tenants) -> None:
    """Cookies carry no authority in the API, which is why it needs no CSRF token."""
    alice_browser = Identity("alice's browser, no token", tenants.alice.client, "")
    served = served_routes(tenants.app)
    api_calls = [c for c in calls(served, "own") + calls(served, "object") if "/api/" in c.path]
    assert api_calls
    refused = {c.send(alice_browser, tenants.owned).status_code for c in api_calls}
    assert refused == {401}


def test_the_owner_reaches_every_object_page(tenants: Tenants) -> None:
    """The ids the other tests use are the right ones: their owner gets the object."""
    problems = []
    for call in calls(served_routes(tenants.app), "object"):
        if call.method != "GET" or call.case.query or not call.case.owner_page:
            continue
        response = call.send(getattr(tenants, call.case.owner), tenants.owned)
        if response.status_code != 200 or (call.case.owner_sees_text and not _leaks(response)):
            problems.append(f"{call.method} {call.url(tenants.owned)}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_public_routes_are_few_and_deliberate() -> None:
    public = sorted(key for key, case in ROUTES.items() if case.kind == PUBLIC.kind)
    assert public == [
        ("GET", "/"),
        ("GET", "/api/v1/docs"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/invitations/{token}"),
        ("GET", "/metrics"),
        ("GET", "/setup"),
        ("GET", "/sign-in"),
        ("GET", "/u/{token}"),
        ("POST", "/invitations/{token}"),
        ("POST", "/setup"),
        ("POST", "/sign-in"),
        ("POST", "/sign-out"),
        ("POST", "/u/{token}"),
    ]


def test_every_exception_to_the_rules_says_why() -> None:
    unexplained = sorted(
        key
        for key, case in ROUTES.items()
        if (case.refusals != frozenset({403, 404}) or not case.owner_page) and not case.why
    )
    assert unexplained == []


DELEGATE_MAY = {
    # The approval's purpose: Dan may name Alice's mailbox when he creates a campaign.
    ("POST", "/campaigns/new"),
    ("POST", "/api/v1/campaigns"),
    # Resume all through the API resumes the caller's own campaigns from the mailbox.
    ("POST", "/api/v1/mailboxes/{mailbox_id}/resume-campaigns"),
    # Its preview lists only those same campaigns of the caller.
    ("GET", "/api/v1/mailboxes/{mailbox_id}/resume-preview"),
}


def test_the_delegate_reaches_nothing_else_of_the_owners(tenants: Tenants) -> None:
    """Dan may send from Alice's mailbox: that opens the delegation to him, and nothing else
    of hers — not her mailbox's settings, her campaigns, her recipients or her tokens."""
    before = tenants.snapshot()
    problems = []
    for call in calls(served_routes(tenants.app), "object"):
        if "/delegations/" in call.path or (call.method, call.path) in DELEGATE_MAY:
            continue
        response = call.send(tenants.dan, tenants.owned)
        where = f"{call.method} {call.url(tenants.owned)} as {tenants.dan.name}"
        if response.status_code not in call.case.refusals:
            problems.append(f"{where}: {response.status_code}, expected {call.case.refusals}")
        if leaked := _leaks(response):
            problems.append(f"{where}: the answer shows {leaked}")
    assert not problems, "\n".join(problems)
    assert tenants.snapshot() == before


def test_a_delegate_sees_the_mailboxs_campaigns_and_nobody_else_does(tenants: Tenants) -> None:
    owned, dan = tenants.owned, tenants.dan
    created = dan.client.post(
        "/api/v1/campaigns",
        headers=dan.api_headers(),
        json={
            "name": "Dan campaign qz8",
            "mailbox_id": owned.mailbox_id,
            "steps": [{"subject": "Hello", "body": "Hi"}],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    delegation_page = f"/delegations/{owned.delegation_id}"

    # The delegate sees his campaign and the delegation, not the owner's own campaign.
    assert dan.client.get(f"/campaigns/{campaign_id}").status_code == 200
    shown = dan.client.get(delegation_page).text
    assert "Dan campaign qz8" in shown
    assert MAILBOX in shown
    assert CAMPAIGN_NAME not in shown
    # The owner sees every campaign sent from her mailbox on the delegation's page.
    assert "Dan campaign qz8" in tenants.alice.client.get(delegation_page).text
    # Nobody else sees either.
    for other in (tenants.bob, tenants.carol):
        for path in (f"/campaigns/{campaign_id}", delegation_page):
            answer = other.client.get(path)
            assert answer.status_code == 404, (other.name, path)
            assert "qz8" not in answer.text
        listed = other.client.get("/api/v1/campaigns", headers=other.api_headers()).text
        assert "qz8" not in listed

    # Withdrawn: the delegate keeps his history but can no longer name the mailbox.
    withdrawn = tenants.alice.client.post(
        f"{delegation_page}/withdraw", data={"csrftoken": form_token(tenants.alice)}
    )
    assert withdrawn.status_code == 200
    again = dan.client.post(
        "/api/v1/campaigns",
        headers=dan.api_headers(),
        json={"name": "Another", "mailbox_id": owned.mailbox_id, "steps": []},
    )
    assert again.status_code == 422
    assert dan.client.get(f"/campaigns/{campaign_id}").status_code == 200
