"""Every form post, read from the live route table, is refused without this browser's token.

A cross-site form can send Alice's cookies but not her page's CSRF token: without one, or with
a token another browser was given (what an attacker can obtain for themselves), every page
route that changes something answers "This form has expired" and changes nothing. The CSV
upload is checked in its route rather than by the middleware, and is tried the same way.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sendwell.web.csrf import CSRF_EXEMPT_PREFIXES
from sendwell.web.paths import API_PREFIX
from tests.conftest import STRONG_PASSWORD, create_first_account
from tests.security.conftest import Tenants
from tests.security.routes import ROUTES, Call, form_token, served_routes

EXPIRED = "This form has expired"


def _form_posts(tenants: Tenants) -> list[Call]:
    found: list[Call] = []
    for method, path in sorted(served_routes(tenants.app)):
        case = ROUTES.get((method, path))  # an unclassified route fails test_authorization
        if method == "GET" or path.startswith(CSRF_EXEMPT_PREFIXES) or case is None:
            continue
        found.extend(Call(method, path, case, fill) for fill in case.fills)
    return found


def _post(tenants: Tenants, call: Call, token: str | None) -> httpx.Response:
    form: dict[str, Any] = dict(call.case.form(tenants.owned)) if call.case.form else {}
    if token is not None:
        form["csrftoken"] = token
    files = {"file": ("people.csv", b"email\nprobe@example.com\n", "text/csv")}
    response: httpx.Response = tenants.alice.client.request(
        call.method,
        call.url(tenants.owned),
        data=form,
        files=files if call.case.upload else None,
        follow_redirects=False,
    )
    return response


@pytest.mark.parametrize("token", ["none", "another browser's"])
def test_every_form_post_needs_this_browsers_token(tenants: Tenants, token: str) -> None:
    posts = _form_posts(tenants)
    assert len(posts) > 20, "the route table was not read"
    sent = None if token == "none" else form_token(tenants.bob)
    form_token(tenants.alice)  # Alice's browser holds its own CSRF cookie, as after any page
    before = tenants.snapshot()
    problems = [
        f"{call.method} {call.url(tenants.owned)}: {response.status_code}"
        for call in posts
        if (response := _post(tenants, call, sent)).status_code != 403
        or EXPIRED not in response.text
    ]
    assert not problems, "\n".join(problems)
    assert tenants.snapshot() == before
    assert tenants.alice.client.get("/account").status_code == 200  # still signed in


def test_only_the_api_the_sandbox_and_unsubscribe_links_are_exempt() -> None:
    exempt = (f"{API_PREFIX}/", "/sandbox/", "/u/")
    assert exempt == CSRF_EXEMPT_PREFIXES


def test_sign_in_and_setup_need_a_token_even_without_a_cookie(client: TestClient) -> None:
    """Login CSRF: a page elsewhere must not sign the browser in to the attacker's account."""
    create_first_account(client)
    client.cookies.clear()
    for path, form in (
        ("/sign-in", {"email": "ada@example.com", "password": STRONG_PASSWORD}),
        ("/setup", {"email": "eve@example.com", "password": STRONG_PASSWORD}),
    ):
        response = client.post(path, data=form, follow_redirects=False)
        assert response.status_code == 403
        assert EXPIRED in response.text
        assert "sendwell_session" not in client.cookies


def test_a_bearer_header_lets_no_form_post_skip_the_token(tenants: Tenants) -> None:
    """A page route never takes an arbitrary `Authorization: Bearer` as a reason to skip CSRF."""
    form_token(tenants.alice)
    before = tenants.snapshot()
    problems = []
    for call in _form_posts(tenants):
        form: dict[str, Any] = dict(call.case.form(tenants.owned)) if call.case.form else {}
        response = tenants.alice.client.request(
            call.method,
            call.url(tenants.owned),
            data=form,
            headers={"Authorization": f"Bearer {tenants.alice.token}"},
            follow_redirects=False,
        )
        if response.status_code != 403 or EXPIRED not in response.text:
            problems.append(f"{call.method} {call.url(tenants.owned)}: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert tenants.snapshot() == before


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "Multipart/Form-Data; boundary="],
)
def test_a_malformed_multipart_post_with_a_cookie_is_refused_not_a_500(
    tenants: Tenants, content_type: str
) -> None:
    form_token(tenants.alice)
    problems = []
    for call in _form_posts(tenants):
        response = tenants.alice.client.request(
            call.method,
            call.url(tenants.owned),
            content=b"x",
            headers={"Content-Type": content_type},
            follow_redirects=False,
        )
        if response.status_code >= 500 or response.status_code not in (400, 403, 422):
            problems.append(f"{call.method} {call.url(tenants.owned)}: {response.status_code}")
    assert not problems, "\n".join(problems)
