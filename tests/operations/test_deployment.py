"""The documented deployment: the Procfile's processes, two web and two workers, on PostgreSQL.

A campaign is created, filled and started through both web processes' API; the workers send
it exactly once and deliver its webhooks; both web processes report the same metrics.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.utils import parseaddr
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Database
from tests.dispatch.conftest import World
from tests.sandbox_support import free_port
from tests.webhooks.conftest import Receiver, admin_token

METRICS_TOKEN = "deployment-metrics-token"
RECIPIENTS = [f"person{i}@example.com" for i in range(20)]
STEPS = [
    {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}.", "delay_minutes": 0},
    {"subject": "Re: Hello {{ first_name }}", "body": "Following up.", "delay_minutes": 0},
]


def procfile(root: Path) -> dict[str, str]:
    """Process type → command line, as a Procfile runner reads them."""
    entries = {}
    for line in (root / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def argv(command: str, port: int = 0) -> list[str]:
    words = shlex.split(command.replace("$PORT", str(port)))
    assert words[0] == "sendwell"
    return [sys.executable, "-m", "sendwell", *words[1:]]


class Processes:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, command: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running.append((name, process, log))

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{(self.folder / f'{name}.log').read_text(errors='replace')[-3000:]}"
            for name, _process, _log in self.running
        )

    def assert_alive(self) -> None:
        for name, process, _log in self.running:
            assert process.poll() is None, f"{name} exited with {process.returncode}\n{self.logs()}"

    def stop_all(self) -> None:
        for _name, process, log in self.running:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


@pytest.fixture
def processes(tmp_path: Path, world: World, database: Database) -> Iterator[Processes]:
    if database.backend != "postgresql":
        pytest.skip("several processes share a PostgreSQL database")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENDWELL_")}
    env.update(
        {
            "SENDWELL_DATABASE_URL": database.url,
            "SENDWELL_SECRET_KEY": world.settings.secret_key,
            "SENDWELL_TOKEN_KEYS": world.settings.token_keys,
            "SENDWELL_BASE_URL": world.settings.base_url,
            "SENDWELL_SANDBOX": "1",
            "SENDWELL_SANDBOX_URL": world.sandbox.url,
            "SENDWELL_METRICS_TOKEN": METRICS_TOKEN,
            "SENDWELL_WEBHOOKS_ALLOW_PRIVATE": "1",
            "SENDWELL_INBOUND_POLL_SECONDS": "5",
            "SENDWELL_DATA_DIR": str(tmp_path / "var"),
        }
    )
    running = Processes(tmp_path, env)
    yield running
    running.stop_all()


def wait_for(condition: Callable[[], bool], what: str, running: Processes, limit: float) -> None:
    """Poll until `condition` holds; fail (with the logs) if a process dies or `limit` passes."""
    deadline = time.monotonic() + limit
    while not condition():
        running.assert_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}\n{running.logs()}")
        time.sleep(0.2)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_two_web_processes_and_two_workers_run_a_campaign(
    world: World,
    receiver: Receiver,
    processes: Processes,
    project_root: Path,
) -> None:
    commands = procfile(project_root)
    release = subprocess.run(
        argv(commands["release"]),
        cwd=processes.folder,
        env=processes.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert release.returncode == 0, release.stdout + release.stderr
    web = []
    for index in (1, 2):
        port = free_port()
        processes.start(f"web-{index}", argv(commands["web"], port))
        web.append(f"http://127.0.0.1:{port}")
    for index in (1, 2):
        processes.start(f"worker-{index}", argv(commands["worker"]))
    for url in web:
        wait_for(partial(healthy, url), f"{url} to answer /healthz", processes, 60)

    headers = {"Authorization": f"Bearer {admin_token(world)}"}

    def api(index: int, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{web[index]}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()

    mailbox_id = world.mailbox_id()
    api(
        0,
        "PATCH",
        f"/mailboxes/{mailbox_id}",
        json={"min_gap_seconds": 0, "low_gap_confirmed": True},
    )
    api(
        1,
        "POST",
        "/webhooks",
        json={"url": f"{receiver.url}/in", "events": ["campaign.started", "campaign.completed"]},
    )
    campaign = api(
        0,
        "POST",
        "/campaigns",
        json={
            "name": "Deployment",
            "mailbox_id": mailbox_id,
            "steps": STEPS,
            "start_delay_minutes": 0,
        },
    )
    added = api(
        1,
        "POST",
        f"/campaigns/{campaign['id']}/recipients",
        json={"recipients": [{"email": e, "first_name": e.split("@")[0]} for e in RECIPIENTS]},
    )
    assert added["added"] == len(RECIPIENTS)
    api(0, "POST", f"/campaigns/{campaign['id']}/start")

    wait_for(
        lambda: api(1, "GET", f"/campaigns/{campaign['id']}")["status"] == "completed",
        "the campaign to complete",
        processes,
        600,
    )
    sent = world.sent()
    arrived = Counter((parseaddr(str(m["to"][0]))[1], m["subject"]) for m in sent)
    assert len(arrived) == len(RECIPIENTS) * len(STEPS)
    assert set(arrived.values()) == {1}

    wait_for(
        lambda: any(r.event["type"] == "campaign.completed" for r in receiver.accepted()),
        "the campaign.completed webhook",
        processes,
        120,
    )
    assert [r.event["type"] for r in receiver.accepted()] == [
        "campaign.started",
        "campaign.completed",
    ]

    for url in web:
        seen = metrics(url)
        assert seen[("sendwell_messages", (("outcome", "sent"),))] == len(sent)
        assert seen[("sendwell_campaigns", (("status", "completed"),))] == 1
        assert seen[("sendwell_mailboxes", (("status", "connected"),))] == 1
        assert seen[("sendwell_claim_lag_seconds", ())] == 0
        assert seen[("sendwell_webhook_deliveries", (("outcome", "delivered"),))] == 2
    processes.assert_alive()
