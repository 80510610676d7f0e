"""JSON admin endpoints that tests and the demo use to act as the user, the world, or a fault."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import asdict, replace
from datetime import timedelta
from email.message import Message
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sendwell.sandbox.google import GMAIL_SCOPES
from sendwell.sandbox.microsoft import AADSTS
from sendwell.sandbox.state import (
    API_FAULTS,
    SEND_FAULTS,
    RegisteredClient,
    SandboxState,
    provider_for,
)

TOKEN_ERRORS = frozenset({"invalid_grant", "invalid_client", *AADSTS})
HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")


class MailboxIn(BaseModel):
    mailbox: str


class ReplyIn(MailboxIn):
    to_message_id: str
    from_: str = Field("", alias="from")
    body: str = "Thanks, let's talk next week."
    auto_reply: bool = False
    # The answer as the recipient's mail system writes it: its subject ("" answers "Re: …")
    # and headers of its own, e.g. an out-of-office responder's.
    subject: str = Field("", max_length=998)
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)


class BounceIn(MailboxIn):
    to_message_id: str
    # The report arrives this many seconds from now (transport runs after the send's answer).
    delay_seconds: float = Field(0, ge=0, le=86_400)


class FaultIn(MailboxIn):
    fault: str
    count: int = Field(1, ge=1, le=10_000)


class TokenErrorIn(MailboxIn):
    code: str
    count: int = Field(1, ge=1, le=10_000)


class MailboxSettingsIn(MailboxIn):
    """Any of the emulated host's per-mailbox behaviours; those left out stay as they are."""

    sent_copy_delay: float | None = Field(None, ge=0, le=86_400)
    drop_custom_headers: bool | None = None
    messages_per_minute: int | None = Field(None, ge=1, le=10_000)
    recipients_per_day: int | None = Field(None, ge=1, le=1_000_000)
    concurrent_requests: int | None = Field(None, ge=1, le=100)
    answer_delay: float | None = Field(None, ge=0, le=60)


class DeleteIn(MailboxIn):
    message_id: str


class TimeoutIn(BaseModel):
    seconds: float = Field(gt=0, le=600)


class ClientIn(BaseModel):
    provider: Literal["google", "microsoft"]
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    redirect_uris: list[str] = Field(min_length=1)
    # Seconds of sandbox time until the secret expires; none means it never does.
    secret_expires_in_seconds: float | None = None
    publishing_status: Literal["testing", "production"] = "production"
    project: str = ""


class ClockIn(BaseModel):
    advance_seconds: float = Field(gt=0, le=10 * 366 * 86400)


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def caller_is_trusted(request: Request, admin_token: str) -> bool:
    """A loopback caller, or one that presents the sandbox admin token."""
    if admin_token:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if secrets.compare_digest(sent.encode(), admin_token.encode()):
            return True
    try:
        return ipaddress.ip_address(request.client.host if request.client else "").is_loopback
    except ValueError:
        return False


def build_router(state: SandboxState, admin_token: str = "") -> APIRouter:
    def only_trusted_callers(request: Request) -> None:
        # These endpoints read every mailbox and act as anyone: never open to the network.
        if not caller_is_trusted(request, admin_token):
            raise HTTPException(
                403,
                "The sandbox admin endpoints answer loopback callers, or the bearer token "
                "SENDWELL_SANDBOX_ADMIN_TOKEN.",
            )

    router = APIRouter(prefix="/admin", dependencies=[Depends(only_trusted_callers)])

    def known(address: str) -> JSONResponse | None:
        if provider_for(address) is None:
            return problem(
                400, f"{address!r} is not a sandbox address (*.gmail.test, *.outlook.test)"
            )
        return None

    @router.get("/messages")
    def messages(mailbox: str, folder: str = "sent") -> Any:
        if (bad := known(mailbox)) is not None:
            return bad
        box = state.mailbox(mailbox)
        with state.lock:
            rows = [m for m in box.messages if m.folder == folder]
        return [
            {
                "id": m.id,
                "thread_id": m.thread_id,
                "to": m.to,
                "subject": m.subject,
                "headers": dict(m.headers),
                "sent_at": m.at.isoformat(),
                "delivered": m.delivered,
            }
            for m in rows
        ]

    @router.post("/revoke")
    def revoke(body: MailboxIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        return {"revoked": state.revoke_all(body.mailbox)}

    @router.post("/recreate")
    def recreate(body: MailboxIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        return {"subject": state.recreate(body.mailbox).subject}

    @router.post("/expire-tokens")
    def expire_tokens(body: MailboxIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        state.expire_access_tokens(body.mailbox)
        return {"expired": True}

    @router.post("/faults")
    def faults(body: FaultIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        box = state.mailbox(body.mailbox)
        if body.fault in SEND_FAULTS:
            queue = box.send_faults
        elif body.fault in API_FAULTS:
            queue = box.api_faults
        else:
            return problem(
                400, f"unknown fault {body.fault!r}; one of {sorted(SEND_FAULTS | API_FAULTS)}"
            )
        with state.lock:
            queue.extend([body.fault] * body.count)
        return {"queued": body.count}

    @router.post("/token-errors")
    def token_errors(body: TokenErrorIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        if body.code not in TOKEN_ERRORS:
            return problem(400, f"unknown token error {body.code!r}; one of {sorted(TOKEN_ERRORS)}")
        box = state.mailbox(body.mailbox)
        with state.lock:
            box.token_errors.extend([body.code] * body.count)
        return {"queued": body.count}

    @router.post("/mailbox-settings")
    def mailbox_settings(body: MailboxSettingsIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        box = state.mailbox(body.mailbox)
        changes = body.model_dump(exclude_unset=True, exclude={"mailbox"})
        with state.lock:
            box.settings = replace(box.settings, **changes)
        return asdict(box.settings)

    @router.post("/delete")
    def delete(body: DeleteIn) -> Any:
        """The owner deletes a message: it leaves listings and reads; its history record stays."""
        if (bad := known(body.mailbox)) is not None:
            return bad
        box = state.mailbox(body.mailbox)
        found = state.find_message(box, body.message_id)
        if found is None:
            return problem(404, f"no message {body.message_id!r} in {body.mailbox}")
        with state.lock:
            found.deleted = True
        return {"deleted": found.id}

    @router.post("/timeout")
    def timeout(body: TimeoutIn) -> Any:
        state.timeout_seconds = body.seconds
        return {"seconds": body.seconds}

    @router.post("/reply")
    def reply(body: ReplyIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        box = state.mailbox(body.mailbox)
        original = state.find_message(box, body.to_message_id)
        if original is None:
            return problem(404, f"no message {body.to_message_id!r} in {body.mailbox}")
        sender = body.from_ or (original.to[0] if original.to else "someone@example.com")
        message = Message()
        message["From"] = sender
        message["To"] = box.address
        message["Subject"] = body.subject or "Re: " + original.subject.removeprefix("Re: ")
        message["In-Reply-To"] = original.message_id
        references = (original.header("References") + " " + original.message_id).strip()
        message["References"] = references
        if body.auto_reply:
            message["Auto-Submitted"] = "auto-replied"
        for name, value in body.headers.items():
            if not HEADER_NAME.fullmatch(name) or any(c in value for c in "\r\n\0"):
                return problem(400, f"not a header: {name!r}")
            message[name] = value
        message_id = f"<{secrets.token_hex(10)}@mail.example.com>"
        message["Message-ID"] = message_id
        stored = state.store(
            box,
            message,
            folder="inbox",
            thread_id=original.thread_id,
            message_id=message_id,
            sender=sender,
        )
        return {"id": stored.id, "thread_id": stored.thread_id, "message_id": message_id}

    @router.post("/bounce")
    def bounce(body: BounceIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        box = state.mailbox(body.mailbox)
        original = state.find_message(box, body.to_message_id)
        if original is None:
            return problem(404, f"no message {body.to_message_id!r} in {body.mailbox}")
        daemon = (
            "mailer-daemon@googlemail.com" if box.provider == "google" else "postmaster@outlook.com"
        )
        message = Message()
        message["From"] = f"Mail Delivery Subsystem <{daemon}>"
        message["To"] = box.address
        message["Subject"] = (
            "Delivery Status Notification (Failure)"
            if box.provider == "google"
            else "Undeliverable: " + original.subject
        )
        message["In-Reply-To"] = original.message_id
        message["References"] = original.message_id
        message["X-Failed-Recipients"] = ", ".join(original.to)
        message["Auto-Submitted"] = "auto-replied"
        message["Content-Type"] = 'multipart/report; report-type=delivery-status; boundary="b"'
        message_id = f"<{secrets.token_hex(10)}@{daemon.split('@')[1]}>"
        message["Message-ID"] = message_id
        stored = state.store(
            box,
            message,
            folder="inbox",
            thread_id=original.thread_id,
            message_id=message_id,
            sender=daemon,
            visible_at=state.now() + timedelta(seconds=body.delay_seconds),
        )
        return {"id": stored.id, "thread_id": stored.thread_id, "message_id": message_id}

    @router.post("/clients")
    def clients(body: ClientIn) -> Any:
        expires = body.secret_expires_in_seconds
        state.register(
            RegisteredClient(
                provider=body.provider,
                client_id=body.client_id,
                secret=body.client_secret,
                redirect_uris=tuple(body.redirect_uris),
                secret_expires_at=None
                if expires is None
                else state.now() + timedelta(seconds=expires),
                publishing_status=body.publishing_status,
                project=body.project,
            )
        )
        return {"registered": body.client_id}

    @router.post("/clock")
    def clock(body: ClockIn) -> Any:
        return {"now": state.clock.advance(body.advance_seconds).isoformat()}

    @router.post("/password-change")
    def password_change(body: MailboxIn) -> Any:
        if (bad := known(body.mailbox)) is not None:
            return bad
        if provider_for(body.mailbox) == "microsoft":
            # Confidential clients' refresh tokens outlive a password change (Microsoft's
            # refresh-token revocation table): nothing ends.
            return {"ended": 0}
        return {"ended": state.end_refresh_tokens(body.mailbox, with_any_of=GMAIL_SCOPES)}

    @router.post("/reset")
    def reset() -> Any:
        state.reset()
        return {"reset": True}

    return router
