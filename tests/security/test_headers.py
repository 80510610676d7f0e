"""Response headers on every page and API answer: CSP without inline script, no framing, a
referrer policy, and nothing a shared cache or the back button could keep."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from sendwell.app import API_PREFIX
from sendwell.web.pages import TEMPLATES_DIR
from tests.security.conftest import Tenants
from tests.security.routes import calls, served_routes


def _directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parts = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return dict(parts)


def _header_problems(response: httpx.Response, where: str) -> list[str]:
    problems = []
    csp = _directives(response)
    if "'unsafe-inline'" in csp.get("script-src", "'unsafe-inline'"):
        problems.append(f"{where}: script-src allows inline script: {csp}")
    if csp.get("frame-ancestors") != "'none'" or csp.get("object-src") != "'none'":
        problems.append(f"{where}: framing or plugins allowed: {csp}")
    expected = {
        "referrer-policy": "same-origin",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
    }
    for name, value in expected.items():
        if response.headers.get(name) != value:
            problems.append(f"{where}: {name} is {response.headers.get(name)!r}")
    return problems


def test_every_page_and_api_answer_carries_the_headers(tenants: Tenants) -> None:
    served = served_routes(tenants.app)
    problems = []
    for kind in ("public", "own", "object"):
        for call in calls(served, kind):
            if call.method != "GET":
                continue
            response = call.send(tenants.alice, tenants.owned)
            problems += _header_problems(response, f"GET {call.url(tenants.owned)}")
    refused = tenants.alice.client.post("/account/tokens", data={"name": "no token"})
    assert refused.status_code == 403
    problems += _header_problems(refused, "the form-expired page")
    problems += _header_problems(tenants.anonymous.client.get("/no-such-page"), "a 404 page")
    problems += _header_problems(
        tenants.anonymous.client.get(f"{API_PREFIX}/me"), "an API 401 answer"
    )
    assert not problems, "\n".join(problems)


def test_the_api_docs_allow_only_their_own_startup_script(client: TestClient) -> None:
    response = client.get(f"{API_PREFIX}/docs")
    inline = re.findall(rb"<script>(.*?)</script>", response.content, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert _directives(response)["script-src"] == f"'self' 'sha256-{digest}'"
    assert _header_problems(response, "the API docs") == []


def test_static_assets_may_be_cached(client: TestClient) -> None:
    response = client.get("/static/app.css")
    assert response.status_code == 200
    assert "cache-control" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("template", sorted(TEMPLATES_DIR.rglob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script(template: Path) -> None:
    """The policy would silently block inline script, so a page must not depend on any."""
    source = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source)
    assert not re.search(r"\son[a-z]+\s*=", source, re.IGNORECASE)
    assert "javascript:" not in source.lower()
