"""A sending worker loads what sending runs, and nothing of the web app: every module it
imports stays in its memory for as long as it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

# What `sendwell worker` imports and builds before it sends: the command, the schema check,
# its jobs and the provider hosts.
WORKER = """
import json, sys
from sendwell import cli, wiring
from sendwell.config import load_settings
from sendwell.db import make_engine
from sendwell.mailboxes.provider_services import build_services
from sendwell.providers.registry import build_registry, make_http_client

settings = load_settings()
cli._require_current_schema(make_engine(settings.sqlalchemy_url))
with make_http_client(settings) as http:
    build_services(settings, build_registry(settings, http))
wiring.jobs()
print(json.dumps(sorted(sys.modules)))
"""
# The web framework and the pages, the emulated hosts, the web server, password hashing, the
# migration tool (the schema check reads the version table itself).
NOT_FOR_SENDING = (
    "alembic",
    "fastapi",
    "starlette",
    "python_multipart",
    "uvicorn",
    "sendwell.app",
    "sendwell.sandbox",
    "sendwell.accounts.passwords",
    "argon2",
    "zxcvbn",
)


def test_a_worker_imports_nothing_of_the_web_app(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENDWELL_")}
    env.update(
        SENDWELL_DATA_DIR=str(tmp_path),
        SENDWELL_SECRET_KEY="a worker's secret key, long enough for the settings",
        SENDWELL_TOKEN_KEYS=Fernet.generate_key().decode(),
        SENDWELL_SANDBOX="1",
    )
    subprocess.run(
        [sys.executable, "-m", "sendwell", "db", "upgrade"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    unwanted = [name for name in loaded if _within(name, NOT_FOR_SENDING)]
    assert unwanted == []


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)
