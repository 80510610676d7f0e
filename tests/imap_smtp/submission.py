"""A real SMTP submission server (aiosmtpd) that delivers into Dovecot over LMTP.

It behaves like a small MTA: authenticated senders only; recipients at the local domain are
checked at RCPT (550 5.1.1 when unknown); any other domain is accepted and, when the final
delivery fails, a delivery-status report (RFC 3464) goes back to the sender. Senders sign in
with a password or an XOAUTH2 token (the same tokens Dovecot accepts). The address
``busy@example.com`` is always put off (451), as a greylisting or overloaded server would.
"""

from __future__ import annotations

import smtplib
import ssl
from base64 import b64decode
from collections.abc import Callable
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser
from email.utils import formatdate, make_msgid
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOCAL_DOMAIN = "example.com"
BUSY = "busy@example.com"


class LmtpDelivery:
    """aiosmtpd handler: check recipients, hand accepted mail to Dovecot's LMTP."""

    def __init__(
        self,
        lmtp_port: int,
        users: Callable[[], dict[str, str]],
        tokens: Callable[[], dict[str, str]],
    ) -> None:
        self.lmtp_port = lmtp_port
        self.users = users
        self.tokens = tokens

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2: "user=<name>^Aauth=Bearer <token>^A^A", base64, in the AUTH line."""
        try:
            fields = b64decode(args[1], validate=True).decode().split("\x01")
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        values = dict(field.split("=", 1) for field in fields if "=" in field)
        token = values.get("auth", "").removeprefix("Bearer ")
        user = values.get("user", "")
        return AuthResult(success=bool(user) and self.tokens().get(token) == user, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() == BUSY:
            return "451 4.3.0 <busy@example.com>: Temporary failure, try again later"
        if address.rpartition("@")[2].lower() == LOCAL_DOMAIN and address not in self.users():
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        sender = str(envelope.mail_from)
        for recipient in envelope.rcpt_tos:
            refusal = self.deliver(sender, recipient, content)
            if refusal:
                self.deliver("", sender, delivery_report(sender, recipient, refusal, content))
        return "250 2.0.0 Ok: queued"

    def deliver(self, sender: str, recipient: str, content: bytes) -> str:
        """'' when delivered, else the LMTP server's refusal."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as lmtp:
            try:
                lmtp.sendmail(sender, [recipient], content)
            except smtplib.SMTPRecipientsRefused as refused:
                code, text = refused.recipients[recipient]
                return f"{code} {text.decode()}"
        return ""


def authenticator(users: Callable[[], dict[str, str]]) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=users().get(login) == password and bool(password), handled=False)

    return check


def delivery_report(sender: str, recipient: str, refusal: str, original: bytes) -> bytes:
    """What an MTA sends back when it cannot deliver: a multipart/report (RFC 3464)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mail.example.com>"
    report["To"] = sender
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate()
    report["Message-ID"] = make_msgid(domain="mail.example.com")
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText(f"Your message could not be delivered to {recipient}.\n\n{refusal}\n"))
    status = Message()
    status.set_type("message/delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mail.example.com"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = f"smtp; {refusal}"
    status.set_payload([per_message, per_recipient])
    report.attach(status)
    headers = BytesHeaderParser().parsebytes(original)
    returned = "".join(f"{name}: {value}\n" for name, value in headers.items())
    report.attach(MIMEText(returned, "rfc822-headers"))
    return report.as_bytes()


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def start_submission(
    handler: LmtpDelivery,
    context: ssl.SSLContext,
    users: Callable[[], dict[str, str]],
    *,
    port: int,
    implicit_tls: bool,
    withheld: tuple[str, ...] = (),
) -> Controller:
    """SMTPS (implicit TLS) or submission with STARTTLS required before AUTH; the ``withheld``
    sign-in mechanisms are not offered.

    On SMTPS aiosmtpd cannot tell the connection is encrypted, so AUTH is allowed without
    STARTTLS and ``handle_MAIL`` refuses unauthenticated senders instead.
    """
    tls: dict[str, Any] = (
        {"ssl_context": context, "auth_require_tls": False, "auth_required": False}
        if implicit_tls
        else {
            "tls_context": context,
            "require_starttls": True,
            "auth_require_tls": True,
            "auth_required": True,
        }
    )
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator(users),
        auth_exclude_mechanism=withheld,
        **tls,
    )
    controller.start()
    return controller
