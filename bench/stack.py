"""Real processes for the benchmarks: a database, the sandbox, `sendwell serve` and workers.

Everything runs as it does in production: the sandbox on its own port, Sendwell as
`python -m sendwell …` processes, a mailbox linked through the sandbox's sign-in and consent
pages, campaigns made through the JSON API.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import Engine, make_url
from tests.sandbox_support import consent_flow, free_port

from bench.common import ROOT, BenchError, chunks
from sendwell import migrate
from sendwell.accounts import service as accounts
from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.providers.base import TAG_HEADER

PG_ADMIN_URL = os.environ.get(
    "SENDWELL_BENCH_POSTGRES_URL",
    os.environ.get(
        "SENDWELL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)
OWNER = "bench-owner@example.com"
PASSWORD = "benchmarks are not tests 42"  # noqa: S105 - a throwaway account
CSRF_FIELD = re.compile(r'name="csrftoken" value="([^"]+)"')
STEP = {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, a quick question."}
_names = itertools.count(1)
# PostgreSQL's default autovacuum_naptime, in seconds.
AUTOVACUUM_NAPTIME = 60


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of our own, dropped afterwards; yields its URL."""
    name = f"{prefix}_{os.getpid()}_{next(_names)}"
    admin = conninfo(PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(backend: str, folder: Path) -> Iterator[Database]:
    """A migrated Sendwell database (SQLite file in `folder`, or a PostgreSQL database, kept
    vacuumed and analyzed as a production server's autovacuum would: `StandInAutovacuum`)."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{folder / f'sendwell-{next(_names)}.db'}"
        else:
            url = stack.enter_context(postgres_database("sendwell_bench"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        migrate.upgrade(engine)
        if backend == "postgresql" and not autovacuum_runs():
            stack.enter_context(StandInAutovacuum(url))
        yield Database(backend, url, engine)


def postgres_version() -> str:
    with psycopg.connect(conninfo(PG_ADMIN_URL), connect_timeout=5) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def autovacuum_runs() -> bool:
    with psycopg.connect(conninfo(PG_ADMIN_URL), connect_timeout=5) as connection:
        row = connection.execute("SHOW autovacuum").fetchone()
    return row is not None and row[0] == "on"


class StandInAutovacuum:
    """`VACUUM (ANALYZE)` of one database every AUTOVACUUM_NAPTIME seconds, for a server that
    runs with autovacuum off (a test machine's setting: this one's CI configuration turns it
    off). Production servers run autovacuum; without it a benchmark's database keeps the
    statistics of its empty tables, so PostgreSQL plans a 10,000-mailbox walk as for 20 rows
    (nested loops over every mailbox), and tables updated every second bloat unvacuumed. Every
    naptime is as often as autovacuum looks at a database with its default settings; it
    vacuums a table only past a threshold of changed rows, so this does at least its work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> StandInAutovacuum:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _loop(self) -> None:
        while not self._stop.wait(AUTOVACUUM_NAPTIME):
            try:
                vacuum_analyze(self.url)
            except psycopg.Error:
                continue  # the database is being dropped, or the server restarted: next time
            self.runs += 1


def vacuum_analyze(url: str) -> None:
    """`VACUUM (ANALYZE)` of the whole database, e.g. right after a bulk load that autovacuum
    would analyze within its naptime."""
    with psycopg.connect(conninfo(url), autocommit=True, connect_timeout=5) as connection:
        connection.execute("VACUUM (ANALYZE)")


def seed_owner(engine: Engine) -> str:
    """The workspace's first user; returns an API token for it."""
    with session_scope(make_session_factory(engine)) as db:
        user = accounts.create_first_account(db, email=OWNER, password=PASSWORD, name="Bench")
        _token, plaintext = accounts.create_api_token(db, user, "bench")
    return plaintext


@dataclass
class Processes:
    """Child processes, each logging to its own file; stopped in reverse order."""

    folder: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [sys.executable, *args],
                cwd=cwd or self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.running[name] = proc
        return proc

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def check(self) -> None:
        """Raise with its log if any process has exited."""
        for name, proc in self.running.items():
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def stop(self, name: str) -> None:
        proc = self.running.pop(name)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


def wait_until(
    condition: Callable[[], bool],
    seconds: float,
    what: str,
    procs: Processes | None = None,
    step: float = 0.05,
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if procs is not None:
            procs.check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(step)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time so far of each live process, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def parse_moment(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Stack:
    """The sandbox, a Sendwell server (optionally without dispatcher) and any workers."""

    def __init__(self, db: Database, folder: Path, procs: Processes, **settings: str) -> None:
        self.db = db
        self.folder = folder
        self.procs = procs
        self.sandbox_port, self.port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}/sandbox"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = seed_owner(db.engine)
        self.secret_key = secrets.token_urlsafe(48)
        self.token_keys = Fernet.generate_key().decode()
        self.settings = settings
        self.api = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=120,
        )
        self.workers = 0

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment (no inherited SENDWELL_*) pointing at this stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
        env.update(
            {
                "SENDWELL_DATABASE_URL": self.db.url,
                "SENDWELL_SECRET_KEY": self.secret_key,
                "SENDWELL_TOKEN_KEYS": self.token_keys,
                "SENDWELL_SANDBOX": "1",
                "SENDWELL_SANDBOX_URL": self.sandbox_url,
                "SENDWELL_BASE_URL": self.base_url,
                "SENDWELL_DATA_DIR": str(self.folder),
                "SENDWELL_DNS_TIMEOUT_SECONDS": "0.3",
            }
        )
        env.update(self.settings)
        env.update(extra)
        return env

    def start(self, *, dispatcher: bool) -> None:
        self.procs.start(
            "sandbox",
            [
                "-m",
                "uvicorn",
                "--factory",
                "bench.sandbox_server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.sandbox_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            self.env(),
            cwd=ROOT,
        )
        args = ["-m", "sendwell", "serve", "--port", str(self.port)]
        self.procs.start("server", args if dispatcher else [*args, "--no-dispatcher"], self.env())
        wait_until(
            lambda: answers(f"{self.sandbox_url}/assets/sandbox.css"), 60, "the sandbox", self.procs
        )
        wait_until(lambda: answers(f"{self.base_url}/healthz"), 90, "sendwell serve", self.procs)

    def start_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        """`sendwell worker` processes, returned once each says it is sending."""
        started = []
        for _ in range(count):
            self.workers += 1
            name = f"worker-{self.workers}"
            started.append((name, self.procs.start(name, ["-m", "sendwell", "worker"], self.env())))
        for name, _proc in started:
            self.wait_for_log(name, "is sending")
        return [proc for _name, proc in started]

    def wait_for_log(self, name: str, text: str) -> None:
        wait_until(lambda: text in self.procs.log(name, tail=100_000), 90, name, self.procs)

    def pids(self, prefix: str) -> list[int]:
        return [p.pid for name, p in self.procs.running.items() if name.startswith(prefix)]

    def database_pids(self) -> list[int]:
        """PostgreSQL server processes serving this stack's database (none on SQLite)."""
        if self.db.backend != "postgresql":
            return []
        with psycopg.connect(conninfo(self.db.url), autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [int(row[0]) for row in rows]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise BenchError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def link(self, address: str, *, min_gap_seconds: int = 0, daily_cap: int | None = None) -> int:
        """Link a sandbox mailbox like a user (sign in, link, consent); pacing off by default:
        no gap (confirmed, as the Settings tab asks) and the host's documented daily limit
        (Google Workspace 2,000, Microsoft 365 10,000) unless `daily_cap` says less."""
        with httpx.Client(base_url=self.base_url, timeout=60) as browser:
            page = browser.get("/sign-in")
            signed_in = browser.post(
                "/sign-in",
                data={"csrftoken": csrf(page.text), "email": OWNER, "password": PASSWORD},
            )
            if signed_in.status_code != 303:
                raise BenchError(f"sign-in answered {signed_in.status_code}")
            page = browser.get("/messaging/settings")
            started = browser.post(
                "/mailboxes/link",
                data={"csrftoken": csrf(page.text), "own": "on", "email": address},
            )
            if started.status_code != 303:
                raise BenchError(f"link answered {started.status_code}: {started.text[:500]}")
            params = consent_flow(started.headers["location"], address)
            provider = "google" if "gmail.test" in address else "microsoft"
            callback = browser.get(f"/mailboxes/callback/{provider}", params=params)
        found = [int(m["id"]) for m in self.call("GET", "/mailboxes") if m["email"] == address]
        if not found:
            raise BenchError(f"linking {address} failed: callback answered {callback.status_code}")
        mailbox_id = found[0]
        host_limit = 2_000 if provider == "google" else 10_000
        self.call(
            "PATCH",
            f"/mailboxes/{mailbox_id}",
            json={
                "min_gap_seconds": min_gap_seconds,
                "daily_cap": min(daily_cap or host_limit, host_limit),
                "low_gap_confirmed": True,
            },
        )
        return mailbox_id

    def campaign(
        self, mailbox_id: int, recipients: int, *, start: bool = True, start_delay: int = 0
    ) -> int:
        """A one-step campaign with `recipients` addresses, started unless told not to."""
        made = self.call(
            "POST",
            "/campaigns",
            json={
                "name": f"Bench {mailbox_id}",
                "mailbox_id": mailbox_id,
                "steps": [STEP],
                "start_delay_minutes": start_delay,
            },
        )
        campaign_id = int(made["id"])
        for part in chunks(recipients, 10_000):
            rows = [
                {"email": f"c{campaign_id}-p{i}@example.com", "first_name": f"P{i}"} for i in part
            ]
            self.call("POST", f"/campaigns/{campaign_id}/recipients", json={"recipients": rows})
        if start:
            self.call("POST", f"/campaigns/{campaign_id}/start")
        return campaign_id

    def sent(self, address: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.sandbox_url}/admin/messages", params={"mailbox": address}, timeout=30
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    def revoke(self, address: str) -> None:
        httpx.post(
            f"{self.sandbox_url}/admin/revoke", json={"mailbox": address}, timeout=30
        ).raise_for_status()

    def counts(self) -> dict[str, int]:
        response = httpx.get(f"http://127.0.0.1:{self.sandbox_port}/bench/counts", timeout=30)
        response.raise_for_status()
        result: dict[str, int] = response.json()
        return result


def csrf(html: str) -> str:
    match = CSRF_FIELD.search(html)
    if match is None:
        raise BenchError("the page has no CSRF field")
    return match.group(1)


def distinct_tags(messages: list[dict[str, Any]]) -> int:
    return len({m["headers"].get(TAG_HEADER, m["id"]) for m in messages})


@contextmanager
def stack(
    backend: str, folder: Path, *, dispatcher: bool, workers: int = 0, **settings: str
) -> Iterator[Stack]:
    """A database, the sandbox and `sendwell serve` (plus workers), all stopped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    procs = Processes(folder)
    with database(backend, folder) as db:
        running = Stack(db, folder, procs, **settings)
        try:
            running.start(dispatcher=dispatcher)
            if workers:
                running.start_workers(workers)
            yield running
        finally:
            running.api.close()
            procs.stop_all()


class Lab:
    """The stacks of one benchmark run, each started on first use and shared by benchmarks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stacks: dict[str, tuple[Stack, ExitStack]] = {}

    def stack(
        self, name: str, backend: str, *, dispatcher: bool, workers: int = 0, **settings: str
    ) -> Stack:
        if name not in self._stacks:
            exits = ExitStack()
            made = exits.enter_context(
                stack(
                    backend,
                    self.folder / name,
                    dispatcher=dispatcher,
                    workers=workers,
                    **settings,
                )
            )
            self._stacks[name] = (made, exits)
        return self._stacks[name][0]

    def sqlite_serve(self) -> Stack:
        """The embedded default: one `sendwell serve` on SQLite, sending."""
        return self.stack("sqlite-serve", "sqlite", dispatcher=True)

    def postgres_workers(self) -> Stack:
        """Past one machine: `sendwell serve --no-dispatcher` and two `sendwell worker`."""
        return self.stack("postgres-workers", "postgresql", dispatcher=False, workers=2)

    def close(self, name: str) -> None:
        if name in self._stacks:
            self._stacks.pop(name)[1].close()

    def close_all(self) -> None:
        for name in list(self._stacks):
            self.close(name)
