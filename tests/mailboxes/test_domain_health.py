"""Domain health on Email Settings, read from a real DNS server on loopback.

The tests' own dnslib server answers for the sending domains (SENDWELL_DNS_SERVERS points
Sendwell at it); its zone changes between checks the way an administrator's edits would.
Time passes for Sendwell by moving the last check back an hour.
"""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dnslib import MX, TXT
from sqlalchemy import Engine, select

from sendwell.db import session_scope
from sendwell.mailboxes.domain_health import assess
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import DomainCheck, MailboxEvent, MailboxEventKind, WebhookEvent
from sendwell.providers.base import ProviderName
from sendwell.providers.domain_dns import DomainDns
from tests.conftest import Database, csrf_from
from tests.dispatch.conftest import World, linked_world
from tests.dns_support import Zone, serving_zone
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox
from tests.webhooks.conftest import admin_token, register

TENANT = "contoso.outlook.test"
WORKSPACE = "acme.gmail.test"
KEY = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, int]]:
    with serving_zone() as served:
        yield served


def world_with(
    database: Database, engine: Engine, sandbox: Sandbox, port: int, address: str
) -> Any:
    return linked_world(
        database,
        engine,
        sandbox,
        lambda client: link(client, address),
        dns_servers=f"127.0.0.1:{port}",
    )


def healthy_tenant(zone: Zone) -> None:
    zone.set(TENANT, "MX", MX("contoso-outlook-test.mail.protection.outlook.com", 0))
    zone.set(TENANT, "TXT", TXT("v=spf1 include:spf.protection.outlook.com -all"))
    zone.set(f"selector1._domainkey.{TENANT}", "TXT", TXT(KEY))
    zone.set(f"_dmarc.{TENANT}", "TXT", TXT("v=DMARC1; p=quarantine; rua=mailto:d@contoso"))


def check_now(world: World, mailbox_id: int, selectors: str = "") -> Any:
    page = f"/mailboxes/{mailbox_id}"
    return world.client.post(
        f"{page}/domain-health",
        data={"csrftoken": csrf_from(world.client.get(page).text), "selectors": selectors},
    )


def health_table(page: str) -> dict[str, str]:
    """Each record's row of the Domain health table, as text."""
    section = page.split('id="domain-health"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<th scope="row">(\w+)</th>(.*?)</tr>', section, re.S)
    return {name: " ".join(re.sub(r"<[^>]+>", " ", body).split()) for name, body in rows}


def an_hour_passes(world: World) -> None:
    with session_scope(world.factory) as db:
        for check in db.scalars(select(DomainCheck)):
            assert check.checked_at is not None
            check.checked_at -= timedelta(hours=1)


def worsened_events(world: World) -> list[MailboxEvent]:
    with session_scope(world.factory) as db:
        found = list(
            db.scalars(
                select(MailboxEvent).where(
                    MailboxEvent.kind == MailboxEventKind.DOMAIN_HEALTH_WORSENED
                )
            )
        )
        db.expunge_all()
        return found


def webhook_payloads(world: World) -> list[dict[str, Any]]:
    with session_scope(world.factory) as db:
        rows = db.scalars(
            select(WebhookEvent.payload).where(
                WebhookEvent.type == "mailbox.domain_health_worsened"
            )
        ).all()
    return [json.loads(row) for row in rows]


def test_a_microsoft_365_domain_checked_now_then_worse_at_the_health_check(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    healthy_tenant(dns)
    with world_with(database, engine, sandbox, port, f"ada@{TENANT}") as world:
        register(world, "http://127.0.0.1:9/hooks", ["mailbox.domain_health_worsened"])
        mailbox_id = world.mailbox_id(f"ada@{TENANT}")
        assert "Not checked yet" in world.client.get(f"/mailboxes/{mailbox_id}").text

        checked = check_now(world, mailbox_id)
        assert checked.status_code == 200
        page = html.unescape(checked.text)
        assert "Domain health checked just now." in page
        table = health_table(page)
        assert table["MX"].startswith("OK contoso-outlook-test.mail.protection.outlook.com (0)")
        assert "include:spf.protection.outlook.com" in table["SPF"]
        assert table["DKIM"].startswith("OK selector1._domainkey")
        assert table["DMARC"].startswith("OK v=DMARC1; p=quarantine")
        assert "goes to spam" in table["DMARC"]

        # The administrator drops the DMARC record and rewrites SPF without Microsoft.
        dns.drop(f"_dmarc.{TENANT}", "TXT")
        dns.set(TENANT, "TXT", TXT("v=spf1 include:_spf.example.net ~all"))
        check_connections(world.factory, world.services)
        assert worsened_events(world) == [], "checked less than an hour ago"
        an_hour_passes(world)
        check_connections(world.factory, world.services)

        (event,) = worsened_events(world)
        assert event.reason == (
            f"{TENANT}: SPF: ok → warning; DMARC: ok → missing. See Domain health for what to add."
        )
        page = html.unescape(world.client.get(f"/mailboxes/{mailbox_id}").text)
        assert "Domain health worsened" in page
        table = health_table(page)
        assert table["SPF"].startswith("Needs a fix")
        assert "It does not name Microsoft" in table["SPF"]
        assert table["DMARC"].startswith("Missing no DMARC record")
        assert f'_dmarc.{TENANT}. TXT "v=DMARC1; p=none;' in table["DMARC"]
        (payload,) = webhook_payloads(world)
        assert payload["domain"] == TENANT
        assert payload["mailbox"]["id"] == mailbox_id
        assert [(c["name"], c["previous_status"], c["status"]) for c in payload["checks"]] == [
            ("SPF", "ok", "warning"),
            ("DMARC", "ok", "missing"),
        ]

        # Unchanged, then unanswered: neither is a change for the worse.
        an_hour_passes(world)
        check_connections(world.factory, world.services)
        dns.silent.add(TENANT)
        an_hour_passes(world)
        check_connections(world.factory, world.services)
        assert len(worsened_events(world)) == 1
        table = health_table(html.unescape(world.client.get(f"/mailboxes/{mailbox_id}").text))
        assert table["MX"].startswith("Not checked Could not be checked: DNS gave no answer")


def test_a_google_workspace_domain_with_records_to_add_and_a_named_selector(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    dns.set(WORKSPACE, "MX", MX("smtp.google.com", 1))
    with world_with(database, engine, sandbox, port, f"ada@{WORKSPACE}") as world:
        mailbox_id = world.mailbox_id(f"ada@{WORKSPACE}")
        table = health_table(html.unescape(check_now(world, mailbox_id).text))
        assert table["MX"].startswith("OK smtp.google.com (1)")
        assert table["SPF"].startswith("Missing no SPF record")
        assert f'{WORKSPACE}. TXT "v=spf1 include:_spf.google.com ~all"' in table["SPF"]
        assert table["DKIM"].startswith(f"Missing no key at google._domainkey.{WORKSPACE}")
        assert "Google Admin console" in table["DKIM"]
        assert table["DMARC"].startswith("Missing")
        assert dns.queries[f"google._domainkey.{WORKSPACE}"] >= 1

        refused = check_now(world, mailbox_id, "s1, not a selector!")
        assert refused.status_code == 422
        assert "is not a DKIM selector" in html.unescape(refused.text)

        dns.set(f"s2024._domainkey.{WORKSPACE}", "TXT", TXT(KEY))
        page = html.unescape(check_now(world, mailbox_id, "s2024").text)
        assert health_table(page)["DKIM"].startswith("OK s2024._domainkey")
        assert 'value="s2024"' in page


def test_consumer_domains_are_the_providers_business(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    with world_with(database, engine, sandbox, port, "ada@gmail.test") as world:
        mailbox_id = world.mailbox_id("ada@gmail.test")
        page = html.unescape(check_now(world, mailbox_id).text)
        assert "Google publishes the MX, SPF, DKIM and DMARC records of gmail.test" in page
        assert health_table(page) == {}
        assert 'id="selectors"' not in page, "no DKIM selector to name for Gmail's own domain"
    assert not dns.queries

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    nobody = DomainDns(nameservers=["127.0.0.1"], port=dead, timeout_seconds=0.3)
    for address, provider, host in [
        ("ada@gmail.com", ProviderName.GOOGLE, "Google"),
        ("ada@googlemail.com", ProviderName.GOOGLE, "Google"),
        ("ada@outlook.com", ProviderName.MICROSOFT, "Microsoft"),
        ("ada@hotmail.com", ProviderName.MICROSOFT, "Microsoft"),
        ("ada@live.com", ProviderName.MICROSOFT, "Microsoft"),
    ]:
        report = assess(address, provider, [], nobody)
        assert (report.handled_by, report.checks) == (host, [])


# --- the API: GET and POST /api/v1/mailboxes/{id}/domain-health ---------------------------------


def api_health(world: World, mailbox_id: int, method: str = "GET", **body: Any) -> Any:
    response = world.client.request(
        method,
        f"/api/v1/mailboxes/{mailbox_id}/domain-health",
        json=body or None,
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    return response


def by_name(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in answer["checks"]}


def test_the_api_reads_and_checks_a_custom_domain(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    dns.set(WORKSPACE, "MX", MX("smtp.google.com", 1))
    with world_with(database, engine, sandbox, port, f"ada@{WORKSPACE}") as world:
        mailbox_id = world.mailbox_id(f"ada@{WORKSPACE}")
        before = api_health(world, mailbox_id)
        assert before.status_code == 200, before.text
        assert before.json() == {
            "mailbox_id": mailbox_id,
            "email": f"ada@{WORKSPACE}",
            "domain": WORKSPACE,
            "handled_by": None,
            "selectors": [],
            "checked_at": None,
            "checks": [],
        }
        assert not dns.queries, "reading the last look asks DNS nothing"

        checked = api_health(world, mailbox_id, "POST")
        assert checked.status_code == 200, checked.text
        answer = checked.json()
        assert answer["checked_at"] is not None
        assert [c["name"] for c in answer["checks"]] == ["MX", "SPF", "DKIM", "DMARC"]
        checks = by_name(answer)
        assert (checks["MX"]["status"], checks["MX"]["found"]) == ("ok", "smtp.google.com (1)")
        assert checks["MX"]["record"] == ""
        assert checks["SPF"]["status"] == "missing"
        assert checks["SPF"]["record"] == f'{WORKSPACE}. TXT "v=spf1 include:_spf.google.com ~all"'
        assert "more likely to be marked as spam" in checks["SPF"]["meaning"]
        assert checks["DKIM"]["status"] == "missing"
        assert "Google Admin console" in checks["DKIM"]["record"]
        assert checks["DMARC"]["status"] == "missing"
        assert checks["DMARC"]["record"].startswith(f'_dmarc.{WORKSPACE}. TXT "v=DMARC1; p=none;')
        # The same last look is what GET and Email Settings show.
        assert api_health(world, mailbox_id).json() == answer
        table = health_table(html.unescape(world.client.get(f"/mailboxes/{mailbox_id}").text))
        assert table["SPF"].startswith("Missing no SPF record")

        # The administrator publishes SPF, DMARC and a key under a selector of their own.
        dns.set(WORKSPACE, "TXT", TXT("v=spf1 include:_spf.google.com ~all"))
        dns.set(f"_dmarc.{WORKSPACE}", "TXT", TXT("v=DMARC1; p=reject"))
        dns.set(f"s2024._domainkey.{WORKSPACE}", "TXT", TXT(KEY))
        again = api_health(world, mailbox_id, "POST", selectors=["s2024"]).json()
        assert again["selectors"] == ["s2024"]
        assert again["checked_at"] >= answer["checked_at"]
        checks = by_name(again)
        assert {name: c["status"] for name, c in checks.items()} == {
            "MX": "ok",
            "SPF": "ok",
            "DKIM": "ok",
            "DMARC": "ok",
        }
        assert checks["DKIM"]["found"] == "s2024._domainkey"
        assert checks["DMARC"]["meaning"] == "Mail failing SPF and DKIM for this domain is refused."
        # Email Settings shows the selector the API named.
        assert 'value="s2024"' in world.client.get(f"/mailboxes/{mailbox_id}").text
        # A POST without a body keeps the selectors named before.
        assert api_health(world, mailbox_id, "POST").json()["selectors"] == ["s2024"]


def test_the_api_refuses_a_selector_that_is_not_one_and_changes_nothing(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    healthy_tenant(dns)
    with world_with(database, engine, sandbox, port, f"ada@{TENANT}") as world:
        mailbox_id = world.mailbox_id(f"ada@{TENANT}")
        first = api_health(world, mailbox_id, "POST", selectors=["s1"]).json()
        asked = sum(dns.queries.values())

        for selectors, code, words in [
            (["s1", "two words"], "invalid_selector", "“two words” is not a DKIM selector"),
            ([f"s{n}" for n in range(11)], "too_many_selectors", "at most 10 DKIM selectors"),
        ]:
            refused = api_health(world, mailbox_id, "POST", selectors=selectors)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == code
            assert words in error["message"]
        unknown = api_health(world, mailbox_id, "POST", selectors=["s1"], dkim="s1")
        assert unknown.status_code == 422

        assert sum(dns.queries.values()) == asked, "a refused request asks DNS nothing"
        assert api_health(world, mailbox_id).json() == first
        assert first["selectors"] == ["s1"]


def test_the_api_on_a_consumer_address_says_who_handles_it(
    database: Database, engine: Engine, sandbox: Sandbox, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    with world_with(database, engine, sandbox, port, "ada@gmail.test") as world:
        mailbox_id = world.mailbox_id("ada@gmail.test")
        answer = api_health(world, mailbox_id, "POST").json()
        assert answer["handled_by"] == "Google"
        assert answer["domain"] == "gmail.test"
        assert answer["checks"] == []
        assert answer["checked_at"] is not None
        assert api_health(world, mailbox_id).json() == answer
        assert api_health(world, mailbox_id + 1000).status_code == 404
    assert not dns.queries
