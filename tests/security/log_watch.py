"""Every log line the test run writes, rendered as in production, searched for secrets.

`install()` routes the standard library's and structlog's logs through the project's own
JSON renderer at DEBUG — the most a deployment can log — into `WATCH` instead of the terminal.
After each test, its lines are searched for the secrets that test used (read from its
fixtures: settings keys, browser cookies, API tokens, the sandbox's provider tokens and codes,
the test password) and for anything shaped like one of our secrets, whoever made it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient

from sendwell.config import SECRETS_FILE_NAME, Settings
from sendwell.kit.logging import configure_logging
from tests.sandbox_support import Sandbox

# Secrets recognisable by their shape: our API tokens and generated webhook signing secrets,
# Fernet ciphertext (stored mailbox tokens), and the provider tokens and authorization codes
# the sandbox issues.
SHAPES = {
    "an API token": re.compile(r"sw_[A-Za-z0-9_-]{43}"),
    "a webhook signing secret": re.compile(r"whsec_[A-Za-z0-9_-]{43}"),
    "encrypted token data": re.compile(r"gAAAAA[A-Za-z0-9_=-]{40,}"),
    "a provider token or code": re.compile(
        r"(?:ya29\.|1//0g|eyJ0eXAiOiJKV1Qi\.|0\.AX|4/0A|M\.C5)[A-Za-z0-9_-]{43}"
    ),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
SECRET_NAMES = re.compile(r"token|password|secret|key", re.IGNORECASE)
COOKIES = ("sendwell_session", "csrftoken")
MIN_SECRET_LENGTH = 8  # shorter strings (an empty key, "x") would match by accident


class LogWatch(logging.Handler):
    """Keeps each rendered line until the current test's lines are checked."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be rendered is reported, not lost
            self.lines.append(f"unrenderable log record: {record.getMessage()!r}")

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


WATCH = LogWatch()


def install() -> None:
    """Render every log record as production does, at DEBUG, into WATCH only."""
    configure_logging("DEBUG", "json")
    root = logging.getLogger()
    WATCH.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [WATCH]


def ensure_installed() -> None:
    """Put WATCH back if a test reconfigured logging to read its own output."""
    root = logging.getLogger()
    if WATCH not in root.handlers:
        root.addHandler(WATCH)
    root.setLevel(logging.DEBUG)


def secrets_in(values: Iterable[object], depth: int = 2) -> set[str]:
    """The secrets held by a test's fixture values (and their fields, two levels down)."""
    found: set[str] = set()
    for value in values:
        found |= _secrets_of(value, depth)
    return {secret for secret in found if len(secret) >= MIN_SECRET_LENGTH}


def _secrets_of(value: object, depth: int) -> set[str]:
    if isinstance(value, Settings):
        keys = [
            value.secret_key,
            *value.token_key_list,
            value.metrics_token,
            urlsplit(value.smtp_url).password,
        ]
        return {str(key) for key in keys if key}
    if isinstance(value, TestClient | httpx.Client):
        cookies = {str(c.value) for c in value.cookies.jar if c.name in COOKIES and c.value}
        bearer = value.headers.get("authorization", "").removeprefix("Bearer ")
        return cookies | {bearer}
    if isinstance(value, Sandbox):
        state = value.state
        with state.lock:
            return set(state.tokens) | set(state.codes) | set(state.issued_refresh_tokens)
    if depth == 0:
        return set()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: set[str] = set()
        for field in dataclasses.fields(value):
            inner = getattr(value, field.name)
            if isinstance(inner, str) and SECRET_NAMES.search(field.name):
                found.add(inner)
            else:
                found |= _secrets_of(inner, depth - 1)
        return found
    return set()


def secrets_file_values(data_dir: Path) -> list[str]:
    """The keys `sendwell` generated into a data folder's secrets file, if it made one."""
    path = data_dir / SECRETS_FILE_NAME
    if not path.exists():
        return []
    values = []
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("SENDWELL_") and value:
            values += value.split(",")
    return values


def leaks(lines: list[str], secrets: set[str]) -> Iterator[str]:
    """Each line holding a secret, said without repeating the secret."""
    for line in lines:
        for secret in secrets:
            if secret in line:
                yield f"a secret this test used ({_hint(secret)}) in: {line.replace(secret, '…')}"
        for kind, shape in SHAPES.items():
            match = shape.search(line)
            if match:
                yield f"{kind} ({_hint(match.group())}) in: {shape.sub('…', line)}"


def _hint(secret: str) -> str:
    return f"{secret[:3]}…, {len(secret)} characters"


def check(lines: list[str], fixture_values: Iterable[Any], known: Iterable[str]) -> list[str]:
    """Every leak in these lines, of the fixtures' secrets, the known ones, or by shape."""
    secrets = secrets_in(fixture_values) | {s for s in known if len(s) >= MIN_SECRET_LENGTH}
    return sorted(set(leaks(lines, secrets)))
