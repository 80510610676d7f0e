"""The anchor for send throughput: procrastinate running no-op jobs on the same PostgreSQL.

Its workers load this module (`procrastinate --app=bench.noop_jobs.app worker`); the
connection string comes from the environment.
"""

from __future__ import annotations

import os

import procrastinate

DSN_VARIABLE = "BENCH_PROCRASTINATE_DSN"
TASK = "noop"


def make_app(conninfo: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    app.task(name=TASK)(noop)
    return app


def noop() -> None:
    """Does nothing: what is measured is the queue itself."""


app = make_app(os.environ.get(DSN_VARIABLE, ""))
