"""A real `sendwell serve` process and headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import IN_CI, STRONG_PASSWORD
from tests.security import log_watch

CHROMIUM = os.environ.get("SENDWELL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServers:
    """Starts `sendwell serve` processes, each in a fresh folder; stops them at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[tuple[subprocess.Popen[bytes], IO[str], Path]] = []
        self.folders: dict[str, Path] = {}

    def start(self, **extra_env: str) -> str:
        """`sendwell db upgrade` and `sendwell serve`, as `make run` does; returns the server's URL.

        `extra_env` adds or overrides `SENDWELL_*` settings, e.g. SENDWELL_HEALTH_CHECK_MINUTES.
        """
        folder = self.tmp_path / f"server-{len(self.running)}"
        folder.mkdir(exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("SENDWELL_")}
        # OAuth callbacks and the server's own calls to the sandbox go to BASE_URL.
        env.update(
            {
                "SENDWELL_SANDBOX": "1",
                "SENDWELL_BASE_URL": url,
                "SENDWELL_LOG_LEVEL": "DEBUG",  # its log is searched for secrets at the end
                **extra_env,
            }
        )
        subprocess.run(
            [sys.executable, "-m", "sendwell", "db", "upgrade"],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = (folder / "server.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "sendwell", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append((process, log, folder))
        self.folders[url] = folder
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("sendwell serve did not start:\n" + (folder / "server.log").read_text())
            time.sleep(0.2)

    def database_url(self, url: str) -> str:
        """The SQLite database of the server at `url`, for a test that sets up a state the UI
        cannot reach quickly (such as steps overdue by days)."""
        return f"sqlite:///{self.folders[url] / 'var' / 'sendwell.db'}"

    def stop_all(self) -> None:
        leaks = []
        for process, log, folder in self.running:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
            lines = (folder / "server.log").read_text().splitlines()
            # Shown with a failed test's output: a page that answered "Internal Server Error"
            # is explained by the server's own traceback.
            errors = [line for line in lines if '"level": "error"' in line or "Traceback" in line]
            if errors:
                sys.stderr.write(
                    "\n".join([f"Errors in the log of the server in {folder}:", *errors[-20:]])
                )
            known = [STRONG_PASSWORD, *log_watch.secrets_file_values(folder / "var")]
            leaks += log_watch.check(lines, [], known)
        self.running.clear()
        assert not leaks, "Secrets in the server's log:\n" + "\n".join(leaks)


@pytest.fixture
def live_servers(tmp_path: Path) -> Iterator[LiveServers]:
    """A factory for live servers with extra settings: `live_servers.start(SENDWELL_X="...")`."""
    servers = LiveServers(tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture
def live_server(live_servers: LiveServers) -> str:
    """`sendwell db upgrade` and `sendwell serve` in a fresh folder, as `make run` does."""
    return live_servers.start()


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        # Keyboard tests check focus: a page the browser does not consider in front can
        # report its focused element as inactive on a busy machine.
        page.bring_to_front()
        yield page
        context.close()
        browser.close()
