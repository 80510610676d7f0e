"""A private PostgreSQL cluster for one run, so it can be restarted without disturbing anyone.

`initdb` into a temporary folder (as the `postgres` OS user when run as root), trust
authentication, listening on 127.0.0.1 only at a free port with its socket in the same folder.
`restart` is `pg_ctl restart` in its default (fast) mode: what `pg_ctlcluster … restart` does
for a packaged cluster, here to a cluster nobody else uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from bench.common import BenchError
from tests.sandbox_support import free_port

BIN_VARIABLE = "SENDWELL_CHAOS_POSTGRES_BIN"
SERVICE_USER = "postgres"


def postgres_bin() -> Path:
    """The folder of `initdb` and `pg_ctl`: the variable, else the newest Debian install,
    else `pg_config --bindir`."""
    if chosen := os.environ.get(BIN_VARIABLE):
        return Path(chosen)
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if installed:
        return installed[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(  # noqa: S603 - a fixed command
            [pg_config, "--bindir"], capture_output=True, text=True, check=True
        )
        return Path(found.stdout.strip())
    raise BenchError(f"no PostgreSQL binaries found: set {BIN_VARIABLE}")


class Cluster:
    """One private PostgreSQL server: its folder, port and superuser URLs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.sockets = folder / "sockets"
        self.logfile = folder / "postgresql.log"
        self.port = free_port()
        self.bin = postgres_bin()
        self.as_root = os.geteuid() == 0

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if self.as_root else []
        result = subprocess.run(  # noqa: S603 - our own binaries and arguments
            [*prefix, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n{self.log()}"
            )

    def log(self, tail: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self.as_root:
            os.chmod(self.folder, 0o755)  # noqa: S103 - the service user must reach its folders
            shutil.chown(self.folder, SERVICE_USER)
            shutil.chown(self.sockets, SERVICE_USER)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off -c full_page_writes=off"
        )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            self._options(),
            "-w",
            "start",
        )

    def restart(self) -> None:
        """`pg_ctl restart` (fast shutdown: every connection is cut, then it starts again)."""
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            self._options(),
            "-w",
            "restart",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def version(self) -> str:
        with psycopg.connect(self.conninfo(), connect_timeout=10) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def terminate_backend(self, database: str, pid: int | None = None) -> int | None:
        """`pg_terminate_backend` on one backend of our database (a given one, else any
        client's); returns the pid cut, or None when there was none."""
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as connection:
            if pid is None:
                row = connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1",
                    (database,),
                ).fetchone()
                if row is None:
                    return None
                pid = int(row[0])
            done = connection.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        return pid if done and done[0] else None


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A started private cluster in a folder of its own (the service user must reach it, so
    not inside a caller's private temporary folder), stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="sendwell-chaos-postgres-"))
    cluster = Cluster(folder)
    cluster.init()
    try:
        cluster.start()
        yield cluster
    finally:
        with suppress(BenchError):
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
