"""Reading and filing mail over IMAP (RFC 3501 / RFC 9051): sign-in, Sent, search, inbound.

Only headers are fetched, except for delivery-status reports (RFC 3464), whose report and
returned headers say which of our messages bounced and for whom.
"""

from __future__ import annotations

import imaplib
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sendwell.kit.outbound import DestinationRefused, OutboundPolicy
from sendwell.providers.errors import AuthRevoked, ProviderError, Transient
from sendwell.providers.mail_server import (
    PASSWORD_CHANGED_HINT,
    AuthMethod,
    Security,
    ServerLogin,
    refused_destination,
    transport_failure,
)

LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')
RESPONSE_CODE = re.compile(r"\[([A-Z-]+)")
# Names hosts use for Sent when they do not mark it \Sent (RFC 6154 SPECIAL-USE).
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "INBOX/Sent")
CREDENTIALS_REFUSED = frozenset({"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED"})


@dataclass(frozen=True)
class FolderState:
    """A folder's UIDVALIDITY and the next UID it will assign."""

    uidvalidity: int
    uidnext: int


class CheckedIMAP(imaplib.IMAP4):
    """IMAP whose connection goes to an address the outbound policy checked."""

    def __init__(self, outbound: OutboundPolicy, *args: Any, **kwargs: Any) -> None:
        self._outbound = outbound
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout: float | None) -> Any:
        return self._outbound.connect(self.host, self.port, timeout, what="mail server connections")


class CheckedIMAPSSL(imaplib.IMAP4_SSL):
    """IMAP over TLS on a checked address; the certificate is still checked for the name."""

    def __init__(self, outbound: OutboundPolicy, *args: Any, **kwargs: Any) -> None:
        self._outbound = outbound
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout: float | None) -> Any:
        sock = self._outbound.connect(self.host, self.port, timeout, what="mail server connections")
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def quoted(value: str) -> str:
    """An IMAP quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def imap_session(
    login: ServerLogin, *, context: ssl.SSLContext, timeout: float, outbound: OutboundPolicy
) -> Iterator[imaplib.IMAP4]:
    """A signed-in IMAP connection, logged out afterwards; failures in our error types."""
    imap = _connect(login, context=context, timeout=timeout, outbound=outbound)
    try:
        _sign_in(imap, login)
        yield imap
    except imaplib.IMAP4.abort as error:
        raise Transient(
            f"The IMAP server {login.imap} dropped the connection ({error}).", code="imap_abort"
        ) from error
    except imaplib.IMAP4.error as error:
        raise ProviderError(
            f"The IMAP server {login.imap} refused a command ({_text(error)}).", code="imap_no"
        ) from error
    except OSError as error:
        raise transport_failure("IMAP", login.imap, error) from error
    finally:
        _logout_quietly(imap)


def _connect(
    login: ServerLogin, *, context: ssl.SSLContext, timeout: float, outbound: OutboundPolicy
) -> imaplib.IMAP4:
    endpoint = login.imap
    try:
        if endpoint.security is Security.TLS:
            return CheckedIMAPSSL(
                outbound, endpoint.host, endpoint.port, ssl_context=context, timeout=timeout
            )
        imap = CheckedIMAP(outbound, endpoint.host, endpoint.port, timeout=timeout)
    except DestinationRefused as error:
        raise refused_destination(error) from None
    except (imaplib.IMAP4.error, OSError) as error:
        raise transport_failure("IMAP", endpoint, error) from error
    try:
        imap.starttls(ssl_context=context)
    except imaplib.IMAP4.error as error:
        _logout_quietly(imap)
        raise ProviderError(
            f"The IMAP server {endpoint} does not offer STARTTLS ({_text(error)}); choose "
            "SSL/TLS or another port.",
            code="no_starttls",
        ) from error
    except OSError as error:
        _logout_quietly(imap)
        raise transport_failure("IMAP", endpoint, error) from error
    return imap


def _sign_in(imap: imaplib.IMAP4, login: ServerLogin) -> None:
    try:
        if login.auth is AuthMethod.XOAUTH2:
            initial = login.xoauth2().encode()
            # A refused token comes back as a challenge that takes an empty answer.
            imap.authenticate("XOAUTH2", lambda challenge: b"" if challenge else initial)
        else:
            imap.login(quoted(login.username), login.secret)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as error:
        raise _refused_sign_in(login, _text(error)) from error


def _refused_sign_in(login: ServerLogin, said: str) -> ProviderError:
    match = RESPONSE_CODE.search(said)
    code = match.group(1) if match else ""
    if code == "UNAVAILABLE":
        return Transient(
            f"The IMAP server {login.imap} cannot sign you in right now ({said}).",
            code="imap_unavailable",
        )
    if code in CREDENTIALS_REFUSED or not code:
        return AuthRevoked(
            f"The IMAP server {login.imap} refused the user name or password ({said}). "
            f"{PASSWORD_CHANGED_HINT}",
            code=f"imap_{(code or 'login_refused').lower()}",
        )
    return ProviderError(
        f"The IMAP server {login.imap} refused the sign-in ({said}).", code=f"imap_{code.lower()}"
    )


def sent_folder(imap: imaplib.IMAP4) -> str:
    """The folder marked \\Sent, else one with a usual name; created when there is none."""
    typ, lines = imap.list()
    folders: list[tuple[bytes, str]] = []
    for line in lines if typ == "OK" else []:
        match = LIST_LINE.match(line) if isinstance(line, bytes) else None
        if match:
            folders.append((match.group("flags").lower(), _unquoted(match.group("name"))))
    for flags, name in folders:
        if b"\\sent" in flags.split():
            return name
    names = {name.lower(): name for _flags, name in folders}
    for candidate in SENT_NAMES:
        if candidate.lower() in names:
            return names[candidate.lower()]
    _check(imap.create(quoted("Sent")), "create the Sent folder")
    return "Sent"


def folder_state(imap: imaplib.IMAP4, folder: str) -> FolderState:
    typ, data = imap.status(quoted(folder), "(UIDNEXT UIDVALIDITY)")
    _check((typ, data), f"read the state of {folder}")
    raw = b" ".join(item for item in data if isinstance(item, bytes))
    values = dict(re.findall(rb"(UIDNEXT|UIDVALIDITY) (\d+)", raw))
    return FolderState(int(values.get(b"UIDVALIDITY", 0)), int(values.get(b"UIDNEXT", 1)))


def select(imap: imaplib.IMAP4, folder: str) -> None:
    """Open a folder read-only (EXAMINE): reading never changes flags."""
    _check(imap.select(quoted(folder), readonly=True), f"open {folder}")


def search_uids(imap: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = imap.uid("SEARCH", *criteria)
    _check((typ, data), "search")
    return sorted(int(uid) for item in data if item for uid in item.split())


def fetch(imap: imaplib.IMAP4, uids: list[int], items: str) -> list[tuple[bytes, bytes]]:
    """(response line, literal) for each message, in the server's order."""
    if not uids:
        return []
    typ, data = imap.uid("FETCH", ",".join(str(uid) for uid in uids), items)
    _check((typ, data), "fetch messages")
    return [item for item in data if isinstance(item, tuple) and len(item) == 2]


def append(imap: imaplib.IMAP4, folder: str, message: bytes) -> None:
    """File a copy of a message we sent, already read."""
    _check(
        imap.append(quoted(folder), r"(\Seen)", imaplib.Time2Internaldate(time.time()), message),
        f"save the message in {folder}",
    )


def uid_of(line: bytes) -> int:
    match = re.search(rb"UID (\d+)", line)
    return int(match.group(1)) if match else 0


def _check(reply: tuple[str, Sequence[object]], what: str) -> None:
    typ, data = reply
    if typ != "OK":
        said = " ".join(item.decode("utf-8", "replace") for item in data if isinstance(item, bytes))
        raise ProviderError(f"The IMAP server could not {what} ({said}).", code="imap_no")


def _unquoted(name: bytes) -> str:
    text = name.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _text(error: BaseException) -> str:
    said = str(error.args[0] if error.args else error)
    if said.startswith(("b'", 'b"')):
        said = said[2:-1]
    return said


def _logout_quietly(imap: imaplib.IMAP4) -> None:
    try:
        imap.logout()
    except (imaplib.IMAP4.error, OSError):
        imap.shutdown()
