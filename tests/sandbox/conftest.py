"""The sandbox over HTTPS, for client libraries that insist on it (MSAL, oauthlib)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from tests.imap_smtp.certificates import make_certificates
from tests.sandbox_support import Sandbox, running_sandbox

# Client libraries that log whole token requests and answers at DEBUG.
TALKATIVE_LIBRARIES = ("msal", "requests_oauthlib", "oauthlib", "google", "googleapiclient")


@pytest.fixture(autouse=True)
def library_debug_logs_off() -> Iterator[None]:
    """Keep third-party DEBUG lines (codes and tokens in full) out of the watched logs."""
    loggers = [logging.getLogger(name) for name in TALKATIVE_LIBRARIES]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="session")
def tls_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    certificates = make_certificates(tmp_path_factory.mktemp("sandbox-tls"))
    with running_sandbox(tls=certificates) as sandbox:
        yield sandbox


@pytest.fixture
def tls_sandbox(tls_sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The sandbox over HTTPS with a CA of the tests' own, emptied before each test."""
    tls_sandbox_server.state.reset()
    tls_sandbox_server.schema_problems.clear()
    yield tls_sandbox_server
    assert not tls_sandbox_server.schema_problems, "\n".join(tls_sandbox_server.schema_problems)


def trusting(sandbox: Sandbox) -> requests.Session:
    """A requests session that trusts only the sandbox's CA."""
    session = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would replace the session's own CA file.
    session.trust_env = False
    session.verify = sandbox.ca_file
    return session
