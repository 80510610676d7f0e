"""A worker's own /metrics server: the same token rule as the web processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from typer.testing import CliRunner

from sendwell import migrate
from sendwell.cli import app
from sendwell.db import make_engine
from sendwell.metrics.server import serve_metrics
from tests.sandbox_support import free_port

TOKEN = "worker-metrics-token"


@pytest.fixture
def server_url() -> Iterator[str]:
    registry = CollectorRegistry()
    Counter("sendwell_example", "An example.", registry=registry).inc()
    port = free_port()
    server = serve_metrics(registry, token=TOKEN, host="127.0.0.1", port=port)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_the_token_is_required(server_url: str) -> None:
    assert httpx.get(f"{server_url}/metrics").status_code == 401
    wrong = httpx.get(f"{server_url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{server_url}/other").status_code == 404


def test_with_the_token_the_metrics_are_served(server_url: str) -> None:
    response = httpx.get(f"{server_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "sendwell_example_total 1.0" in response.text


def test_a_worker_refuses_a_metrics_port_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SENDWELL_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("SENDWELL_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(tmp_path))
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    migrate.upgrade(engine)
    engine.dispose()
    result = CliRunner().invoke(app, ["worker", "--once", "--metrics-port", str(free_port())])
    assert result.exit_code == 2
    assert "--metrics-port needs SENDWELL_METRICS_TOKEN" in result.output
