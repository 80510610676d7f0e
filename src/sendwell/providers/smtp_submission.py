"""Message submission over SMTP (RFC 6409) with every reply classified into our error types.

Replies: RFC 5321 basic codes, RFC 3463 enhanced codes, RFC 4954 for AUTH. The end of DATA is
the one moment whose outcome can be unknown: once the final "." has left, a lost reply may
hide an accepted message (``DataUnanswered``); before that the server cannot have accepted it.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from sendwell.kit.outbound import DestinationRefused, OutboundPolicy
from sendwell.providers.errors import AuthRevoked, ProviderError, RecipientRejected, Transient
from sendwell.providers.mail_server import (
    PASSWORD_CHANGED_HINT,
    AuthMethod,
    Security,
    ServerLogin,
    refused_destination,
    transport_failure,
)

ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}")
# At RCPT these name the sender or a policy, not the recipient's address (RFC 3463: 5.1.7 and
# 5.1.8 are the sender's address, 5.7.x security or policy). Postfix answers a sender it refuses
# ("Sender address rejected: not owned by user …") only at RCPT, as its smtpd_delay_reject does.
NOT_THE_RECIPIENT = re.compile(rb"^5\.(1\.[78]|7\.\d{1,3})$")
LINE_END = re.compile(rb"\r\n|\r|\n")
# Credentials refused: 535 (RFC 4954) and 534, which hosts answer when an app password is needed.
AUTH_REFUSED = frozenset({534, 535})
# One mechanism, tried once: smtplib's login() retries a refused password with every other
# mechanism the server offers, and hosts count each refusal toward locking the account or
# banning our address (fail2ban watches Postfix's "authentication failed" lines).
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class DataUnanswered(Exception):
    """The whole message reached the server but its answer did not come back."""


class CheckedSMTP(smtplib.SMTP):
    """SMTP whose every connection goes to an address the outbound policy checked."""

    def __init__(self, outbound: OutboundPolicy, *args: Any, **kwargs: Any) -> None:
        self._outbound = outbound
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
        return self._outbound.connect(host, port, timeout, what="mail server connections")


class CheckedSMTPSSL(smtplib.SMTP_SSL, CheckedSMTP):
    """SMTP over TLS on a checked address; the certificate is still checked for the name."""

    def __init__(
        self,
        outbound: OutboundPolicy,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self._outbound = outbound
        smtplib.SMTP_SSL.__init__(self, host, port, timeout=timeout, context=context)


def check_login(
    login: ServerLogin, *, context: ssl.SSLContext, timeout: float, outbound: OutboundPolicy
) -> None:
    """Connect, secure and authenticate, then leave: proves the SMTP settings work."""
    with _session(login, context=context, timeout=timeout, outbound=outbound):
        pass


def submit(
    login: ServerLogin,
    message: bytes,
    *,
    context: ssl.SSLContext,
    timeout: float,
    outbound: OutboundPolicy,
) -> None:
    """Hand one message to the submission server, or raise why not.

    Raises ``DataUnanswered`` when the message was fully written but no reply came.
    """
    sender, recipients = envelope_of(message, login.email)
    with _session(login, context=context, timeout=timeout, outbound=outbound) as smtp:
        try:
            _expect(smtp.mail(sender), "the sender", sender)
            for recipient in recipients:
                _expect(smtp.rcpt(recipient), "the recipient", recipient)
            _expect(smtp.docmd("DATA"), "the message", "", ok=354)
            smtp.send(_dot_stuffed(message))
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            # Nothing, or only part of the message, was written: the server cannot have
            # accepted it.
            raise _dropped(login, error) from error
        try:
            reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise DataUnanswered(str(error)) from error
        _expect(reply, "the message", "")


def envelope_of(message: bytes, fallback_sender: str) -> tuple[str, list[str]]:
    """The envelope sender and recipients, from the message's own From, To and Cc."""
    headers = BytesHeaderParser().parsebytes(message)
    senders = [address for _name, address in getaddresses(headers.get_all("From", []))]
    recipients = [
        address
        for _name, address in getaddresses([*headers.get_all("To", []), *headers.get_all("Cc", [])])
        if address
    ]
    if not recipients:
        raise ProviderError("The message has no recipient.", code="no_recipient")
    return (senders[0] if senders and senders[0] else fallback_sender), recipients


@contextmanager
def _session(
    login: ServerLogin, *, context: ssl.SSLContext, timeout: float, outbound: OutboundPolicy
) -> Iterator[smtplib.SMTP]:
    endpoint = login.smtp
    try:
        if endpoint.security is Security.TLS:
            smtp: smtplib.SMTP = CheckedSMTPSSL(
                outbound, endpoint.host, endpoint.port, timeout=timeout, context=context
            )
        else:
            smtp = CheckedSMTP(outbound, endpoint.host, endpoint.port, timeout=timeout)
    except DestinationRefused as error:
        raise refused_destination(error) from None
    except smtplib.SMTPConnectError as error:
        # Whatever answered is not greeting as a mail server: its words are not repeated.
        raise ProviderError(
            f"The SMTP server {endpoint} did not greet Sendwell as a mail server "
            f"(reply code {error.smtp_code}). Check the host and port.",
            code="smtp_greeting",
        ) from error
    except (smtplib.SMTPServerDisconnected, OSError) as error:
        raise transport_failure("SMTP", endpoint, error) from error
    try:
        _secure_and_authenticate(smtp, login, context)
        yield smtp
    except BaseException:
        # A failed conversation gets no polite QUIT: the server may be gone or stuck.
        smtp.close()
        raise
    _quit_quietly(smtp)


def _secure_and_authenticate(
    smtp: smtplib.SMTP, login: ServerLogin, context: ssl.SSLContext
) -> None:
    endpoint = login.smtp
    try:
        smtp.ehlo()
        if endpoint.security is Security.STARTTLS:
            if not smtp.has_extn("starttls"):
                raise ProviderError(
                    f"The SMTP server {endpoint} does not offer STARTTLS; choose SSL/TLS "
                    "or another port.",
                    code="no_starttls",
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        _authenticate(smtp, login)
    except smtplib.SMTPAuthenticationError as error:
        raise _auth_refused(login, error.smtp_code, error.smtp_error) from error
    except smtplib.SMTPNotSupportedError as error:
        raise ProviderError(
            f"The SMTP server {endpoint} does not accept a sign-in (no AUTH). Check the "
            "port: submission is usually 465 (SSL/TLS) or 587 (STARTTLS).",
            code="no_auth",
        ) from error
    except smtplib.SMTPResponseException as error:
        raise _classified(error.smtp_code, error.smtp_error, "the sign-in", "") from error
    except (smtplib.SMTPException, OSError) as error:
        raise transport_failure("SMTP", endpoint, error) from error


def _authenticate(smtp: smtplib.SMTP, login: ServerLogin) -> None:
    if login.auth is AuthMethod.XOAUTH2:
        initial = login.xoauth2()

        # The server answers a refused token with a 334 JSON challenge that takes an empty reply.
        def respond(challenge: bytes | None = None) -> str:
            return initial if challenge is None else ""

        smtp.auth("XOAUTH2", respond)
        return
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("AUTH")
    offered = smtp.esmtp_features["auth"].upper().split()
    mechanism = next((name for name in PASSWORD_MECHANISMS if name in offered), "")
    if not mechanism:
        raise ProviderError(
            f"The SMTP server {login.smtp} does not accept a password sign-in (it offers "
            f"{' '.join(offered) or 'none'}).",
            code="no_password_auth",
        )
    smtp.user, smtp.password = login.username, login.secret
    # smtplib's own answerers: auth_plain, auth_login, auth_cram_md5.
    answer = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
    try:
        smtp.auth(mechanism, answer)
    except UnicodeEncodeError:
        raise ProviderError(
            "The SMTP server accepts only plain ASCII user names and passwords.",
            code="non_ascii_credentials",
        ) from None


def _auth_refused(login: ServerLogin, code: int, text: bytes | str) -> ProviderError:
    said = _said(code, text)
    if code in AUTH_REFUSED:
        return AuthRevoked(
            f"The SMTP server {login.smtp} refused the user name or password ({said}). "
            f"{PASSWORD_CHANGED_HINT}",
            code=f"smtp_{code}",
        )
    return _classified(code, text, "the sign-in", "")


def _expect(reply: tuple[int, bytes], what: str, address: str, *, ok: int | None = None) -> None:
    code, text = reply
    if (ok is None and 200 <= code < 300) or code == ok:
        return
    raise _classified(code, text, what, address)


def _classified(code: int, text: bytes | str, what: str, address: str) -> ProviderError:
    """One SMTP reply as our error type, with the server's words."""
    said = _said(code, text)
    subject = f"{what} {address}".strip()
    if code == 421 or 400 <= code < 500:
        return Transient(
            f"The SMTP server put off {subject} for now ({said}).", code=f"smtp_{code}"
        )
    if what == "the recipient" and NOT_THE_RECIPIENT.match(_enhanced(text)):
        return ProviderError(
            f"The SMTP server refused to take the message for {address} ({said}).",
            code=f"smtp_{code}",
        )
    if what == "the recipient" and code in (550, 551, 553):
        return RecipientRejected(
            f"The SMTP server refused {subject} ({said}).", code=f"smtp_{code}"
        )
    if what == "the message" and _enhanced(text).startswith(b"5.1."):
        return RecipientRejected(
            f"The SMTP server refused the message's recipient ({said}).", code=f"smtp_{code}"
        )
    if code == 530:
        return AuthRevoked(
            f"The SMTP server asks for a sign-in it did not accept ({said}). "
            f"{PASSWORD_CHANGED_HINT}",
            code="smtp_530",
        )
    return ProviderError(f"The SMTP server refused {subject} ({said}).", code=f"smtp_{code}")


def _dropped(login: ServerLogin, error: BaseException) -> Transient:
    return Transient(
        f"The SMTP server {login.smtp} closed the connection before the message was "
        f"complete ({type(error).__name__}).",
        code="smtp_dropped",
    )


def _enhanced(text: bytes | str) -> bytes:
    match = ENHANCED.match(_as_bytes(text).strip())
    return match.group(0) if match else b""


def _said(code: int, text: bytes | str) -> str:
    words = " ".join(_as_bytes(text).decode("utf-8", "replace").split())
    return f"{code} {words}".strip()


def _as_bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "replace")


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ended by a lone "."."""
    lines = LINE_END.sub(b"\r\n", message)
    if not lines.endswith(b"\r\n"):
        lines += b"\r\n"
    stuffed = re.sub(rb"(?m)^\.", b"..", lines)
    return stuffed + b".\r\n"


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
