"""The peer for send throughput: the same work as Sendwell's, built on a standard job queue.

One procrastinate task per message, as a competent team would write it without our engine:
render the campaign's Jinja templates (compiled once per process, in Jinja's sandbox), build
the MIME message with the standard library's `email` package, send it through Gmail's
messages.send on a keep-alive connection, read the sent message's Message-ID back (as
Sendwell does, for threading follow-ups) and record a ledger row in its own table.

Its workers load this module (`procrastinate --app=bench.peer_jobs.app worker`); the
database and the sandbox's URL come from the environment.
"""

from __future__ import annotations

import base64
import os
import threading
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import httpx
import procrastinate
import psycopg
from jinja2.sandbox import SandboxedEnvironment

from bench.stack import STEP
from sendwell.kit.clock import utcnow
from sendwell.providers.base import TAG_HEADER

DSN_VARIABLE = "BENCH_PEER_DSN"
SANDBOX_VARIABLE = "BENCH_PEER_SANDBOX"
TASK = "send_message"
LEDGER = """CREATE TABLE IF NOT EXISTS peer_ledger (
    id bigserial PRIMARY KEY,
    tag text UNIQUE NOT NULL,
    recipient text NOT NULL,
    provider_message_id text NOT NULL,
    thread_id text NOT NULL,
    message_id_header text NOT NULL,
    sent_at timestamptz NOT NULL
)"""
environment = SandboxedEnvironment(autoescape=False)
SUBJECT = environment.from_string(STEP["subject"])
BODY = environment.from_string(STEP["body"])
_local = threading.local()


def make_app(conninfo: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    app.task(name=TASK)(send_message)
    return app


def _client() -> httpx.Client:
    if not hasattr(_local, "http"):
        _local.http = httpx.Client(base_url=os.environ[SANDBOX_VARIABLE], timeout=30)
    client: httpx.Client = _local.http
    return client


def _ledger() -> psycopg.Connection[Any]:
    if not hasattr(_local, "db"):
        _local.db = psycopg.connect(os.environ[DSN_VARIABLE], autocommit=True)
    connection: psycopg.Connection[Any] = _local.db
    return connection


def build(sender: str, recipient: str, first_name: str, tag: str) -> bytes:
    fields = {"first_name": first_name}
    message = EmailMessage()
    message["From"] = Address("Bench", addr_spec=sender)
    message["To"] = Address(first_name, addr_spec=recipient)
    message["Subject"] = SUBJECT.render(fields)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message[TAG_HEADER] = tag
    message.set_content(BODY.render(fields))
    return message.as_bytes()


def send_message(sender: str, token: str, recipient: str, first_name: str, tag: str) -> None:
    """Render, build, send, read the Message-ID back, record."""
    mime = build(sender, recipient, first_name, tag)
    headers = {"Authorization": f"Bearer {token}"}
    gmail = "/google/gmail/v1/users/me/messages"
    sent = _client().post(
        f"{gmail}/send",
        json={"raw": base64.urlsafe_b64encode(mime).decode()},
        headers=headers,
    )
    sent.raise_for_status()
    answer = sent.json()
    metadata = _client().get(
        f"{gmail}/{answer['id']}",
        params={"format": "metadata", "metadataHeaders": "Message-ID"},
        headers=headers,
    )
    metadata.raise_for_status()
    message_id = next(
        (
            h["value"]
            for h in metadata.json().get("payload", {}).get("headers", [])
            if h["name"].lower() == "message-id"
        ),
        "",
    )
    _ledger().execute(
        "INSERT INTO peer_ledger (tag, recipient, provider_message_id, thread_id, "
        "message_id_header, sent_at) VALUES (%s, %s, %s, %s, %s, now())",
        (tag, recipient, answer["id"], answer["threadId"], message_id),
    )


app = make_app(os.environ.get(DSN_VARIABLE, ""))
