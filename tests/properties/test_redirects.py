"""The redirect after sign-in only ever goes to a path on this site, whatever `next` says.

`next` values are generated to look like what an attacker would try — other hosts with and
without a scheme, protocol-relative and backslash forms, encoded and whitespace-padded
variants — mixed with any text. The address the browser would follow, read the way browsers
read it (tabs and line breaks dropped, backslashes as slashes), stays on this site.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import create_first_account

BASE = "http://testserver/"
tricks = st.sampled_from(
    [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "/%2F/evil.example",
        "%2F%2Fevil.example",
        "/messaging/settings",
        "/",
        "",
        "@evil.example",
        "/.//evil.example",
    ]
)
next_values = st.lists(st.one_of(tricks, st.text(max_size=8)), min_size=1, max_size=3).map("".join)


def _as_a_browser_reads_it(location: str) -> str:
    cleaned = "".join(char for char in location if char not in "\t\n\r").strip()
    return urljoin(BASE, cleaned.replace("\\", "/"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(target=next_values)
def test_the_redirect_after_sign_in_stays_on_this_site(client: TestClient, target: str) -> None:
    if "sendwell_session" not in client.cookies:
        create_first_account(client)
    response = client.get("/sign-in", params={"next": target}, follow_redirects=False)
    assert response.status_code == 303
    followed = urlsplit(_as_a_browser_reads_it(response.headers["location"]))
    assert (followed.scheme, followed.netloc) == ("http", "testserver"), response.headers
