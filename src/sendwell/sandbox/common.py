"""Pieces both emulated mail APIs share: bearer checks, MIME parsing, queued faults."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import Message

from fastapi import Request

from sendwell.sandbox.state import Mailbox, SandboxState, StoredMessage, Token


def bearer_token(request: Request, state: SandboxState) -> Token | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    return state.live_token(header[7:].strip(), "access")


def parse_mime(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def next_fault(state: SandboxState, mailbox: Mailbox, *, sending: bool) -> str | None:
    """Pop the mailbox's next queued fault that applies to this kind of request."""
    with state.lock:
        if mailbox.api_faults:
            return mailbox.api_faults.popleft()
        if sending and mailbox.send_faults:
            return mailbox.send_faults.popleft()
    return None


async def hold_like_a_timeout(state: SandboxState) -> None:
    await asyncio.sleep(state.timeout_seconds)


async def take_time_to_answer(mailbox: Mailbox) -> None:
    """A send accepted after the mailbox's `answer_delay`, as a host across the internet."""
    if mailbox.settings.answer_delay:
        await asyncio.sleep(mailbox.settings.answer_delay)


def thread_for_reply(
    state: SandboxState, mailbox: Mailbox, parsed: Message
) -> StoredMessage | None:
    """The earlier message this one answers, by In-Reply-To or References."""
    wanted = [parsed.get("In-Reply-To", ""), *str(parsed.get("References", "")).split()]
    for message_id in filter(None, (value.strip() for value in wanted)):
        found = state.find_message(mailbox, message_id)
        if found is not None:
            return found
    return None


def normalized_subject(subject: str) -> str:
    """A subject without reply prefixes, as Gmail compares them when threading."""
    text = subject.strip()
    while text[:3].lower() in ("re:", "fw:") or text[:4].lower() == "fwd:":
        text = text.split(":", 1)[1].strip()
    return text.lower()
