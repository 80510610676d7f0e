"""The outside probe that found the stalls, against a real server: it keeps answering others.

One member sends the CSV header that took csv.Sniffer seconds, a template that built hundreds
of megabytes, and an IMAP/SMTP link to a loopback port; meanwhile another client asks
`/healthz` every 50 ms. Each probe is refused with its reason, every health check answers
within a second, and the process does not grow by anything like the sizes the probes asked for.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.models import User
from tests.conftest import Database, create_first_account, csrf_from, make_settings
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox, free_port

CSV_HEADER_BOMB = b"email" + b',"a' * 333_333 + b"\n"  # 1 MB: about an hour for the Sniffer
TEMPLATE_BOMB = '{% set x = "a" * 100000 %}{% set y = [x] * 1000 %}{{ y | join }}'
MOST_SECONDS = 1.0  # the bound on how long anyone else may wait
MOST_GROWTH_KB = 64 * 1024  # the bombs asked for 100 MB and more


@dataclass
class Server:
    url: str
    cookies: dict[str, str]
    bearer: dict[str, str]
    campaign_id: int
    mailbox_id: int


@pytest.fixture
def server(database: Database, engine: Engine, sandbox: Sandbox, db: Session) -> Iterator[Server]:
    settings = make_settings(database.url, sandbox=True, sandbox_url=sandbox.url, outbound_allow="")
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        create_first_account(client)
        link(client, "ada@gmail.test")
        user = db.scalars(select(User)).one()
        _token, plaintext = accounts.create_api_token(db, user, "probe")
        db.commit()
        bearer = {"Authorization": f"Bearer {plaintext}"}
        mailbox_id = client.get("/api/v1/mailboxes", headers=bearer).json()[0]["id"]
        steps = [{"subject": "Hi", "body": "Hello"}]
        created = client.post(
            "/api/v1/campaigns",
            json={"name": "Probe", "mailbox_id": mailbox_id, "steps": steps},
            headers=bearer,
        )
        campaign_id = created.json()["id"]
        client.get(f"/campaigns/{campaign_id}")
        cookies = dict(client.cookies.items())
        port = free_port()
        uv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        while not uv.started:
            time.sleep(0.02)
        try:
            yield Server(f"http://127.0.0.1:{port}", cookies, bearer, campaign_id, mailbox_id)
        finally:
            uv.should_exit = True
            thread.join(timeout=10)


def _while_probing(
    server: Server, probe: Callable[[httpx.Client], httpx.Response]
) -> tuple[httpx.Response, float]:
    """The probe's answer, and the slowest /healthz answered while it ran."""
    slowest = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal slowest
        with httpx.Client(base_url=server.url, timeout=30) as other:
            while not done.is_set():
                started = time.perf_counter()
                assert other.get("/healthz").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120, cookies=server.cookies) as member:
            answer = probe(member)
    finally:
        done.set()
        watcher.join()
    return answer, slowest


def _grown_kb(before: int) -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def test_the_probe_leaves_the_server_answering_others(server: Server) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def csv_header(member: httpx.Client) -> httpx.Response:
        page = member.get(f"/campaigns/{server.campaign_id}")
        return member.post(
            f"/campaigns/{server.campaign_id}/recipients/import",
            data={"csrftoken": csrf_from(page.text)},
            files={"file": ("people.csv", CSV_HEADER_BOMB, "text/csv")},
        )

    def template(member: httpx.Client) -> httpx.Response:
        steps = [{"subject": "Hi", "body": "Hello", "body_html": TEMPLATE_BOMB}]
        return member.put(
            f"/api/v1/campaigns/{server.campaign_id}",
            json={"name": "Probe", "mailbox_id": server.mailbox_id, "steps": steps},
            headers=server.bearer,
        )

    def loopback_imap(member: httpx.Client) -> httpx.Response:
        body = {
            "email": "ada@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": "4222",
            "imap_host": "localhost",
            "imap_port": "4222",
            "password": "probe",
        }
        return member.post("/api/v1/mailboxes/link-server", json=body, headers=server.bearer)

    expected = {
        csv_header: (422, "one row is longer than 1,000,000 characters"),
        template: (422, "over its render budget"),
        loopback_imap: (422, "loopback, private or reserved address"),
    }
    for probe, (status, reason) in expected.items():
        answer, slowest = _while_probing(server, probe)
        assert (answer.status_code, reason in answer.text) == (status, True), answer.text[:500]
        assert slowest < MOST_SECONDS, f"{probe.__name__}: /healthz took {slowest:.2f} s"
    assert _grown_kb(before) < MOST_GROWTH_KB
