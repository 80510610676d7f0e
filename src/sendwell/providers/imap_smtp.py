"""Any mailbox reachable over SMTP submission and IMAP: the "Other" host.

Sending goes through SMTP; the copy in Sent, finding a message by our tag, and replies and
bounces go through IMAP. The credential every call receives is a ``ServerLogin``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from email.parser import BytesHeaderParser
from typing import TypeVar

from sendwell.kit.logging import get_logger
from sendwell.kit.outbound import OutboundPolicy
from sendwell.metrics.process import PROVIDER_ERRORS, PROVIDER_REQUEST_SECONDS, provider_label
from sendwell.providers import imap_mailbox as imap_ops
from sendwell.providers import smtp_submission
from sendwell.providers.base import TAG_HEADER, InboundPage, ProviderName, SentMessage, SentProbe
from sendwell.providers.credentials import Credential, login_of
from sendwell.providers.errors import OutcomeUnknown, ProviderError
from sendwell.providers.imap_inbound import read_inbound
from sendwell.providers.mail_server import ServerLogin, tls_context

T = TypeVar("T")
log = get_logger(__name__)
MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class ImapSmtpProvider:
    """SMTP submission for sending, IMAP for Sent, reconciliation, replies and bounces."""

    name = ProviderName.IMAP
    # Servers' own rate limits vary and answer with 4xx; Sendwell files the copy in Sent
    # itself before the send returns.
    min_send_interval = timedelta(0)
    sent_copy_lag = timedelta(0)
    sent_copies_by_tag = True

    def __init__(
        self,
        *,
        timeout_seconds: float,
        ca_file: str = "",
        outbound: OutboundPolicy = OutboundPolicy(),
    ) -> None:
        self.timeout = timeout_seconds
        self.context = tls_context(ca_file)
        self.outbound = outbound

    def check_connection(self, login: ServerLogin) -> None:
        """Sign in to both servers and find Sent; raises the first problem, in words."""
        self._timed("check_smtp", lambda: self._smtp_login(login))
        self._timed("check_imap", lambda: self._imap_ready(login))

    def send(
        self, credential: Credential, mime: bytes, *, tag: str, thread_id: str | None = None
    ) -> SentMessage:
        """Submit over SMTP, then make sure a copy is in Sent (filed only if the host did not)."""
        login = login_of(credential, self.name.label)
        message_id = _header_id(mime, "Message-ID")
        try:
            self._timed(
                "smtp_submit",
                lambda: smtp_submission.submit(
                    login, mime, context=self.context, timeout=self.timeout, outbound=self.outbound
                ),
            )
        except smtp_submission.DataUnanswered as error:
            # The whole message reached the server; it is far likelier accepted than not.
            # Filing it in Sent lets reconciliation count it as sent: never twice.
            self._keep_copy(login, mime, tag)
            raise OutcomeUnknown(
                f"The SMTP server {login.smtp} received the whole message but its answer was lost.",
                code="no_answer",
            ) from error
        self._keep_copy(login, mime, tag)
        return SentMessage(message_id, thread_id or message_id, message_id)

    def find_sent(self, credential: Credential, probe: SentProbe) -> list[SentMessage]:
        """Our message with this tag in Sent (IMAP SEARCH HEADER searches the whole folder,
        so the probe's moment is not needed)."""
        login = login_of(credential, self.name.label)
        found = self._timed("imap_find_sent", lambda: self._find_in_sent(login, probe.tag))
        return [found] if found is not None else []

    def list_inbound(self, credential: Credential, cursor: str | None) -> InboundPage:
        login = login_of(credential, self.name.label)
        return self._timed("imap_inbound", lambda: self._read_inbound(login, cursor))

    def probe(self, credential: Credential) -> None:
        self.check_connection(login_of(credential, self.name.label))

    def _smtp_login(self, login: ServerLogin) -> None:
        smtp_submission.check_login(
            login, context=self.context, timeout=self.timeout, outbound=self.outbound
        )

    def _imap_ready(self, login: ServerLogin) -> None:
        with imap_ops.imap_session(
            login, context=self.context, timeout=self.timeout, outbound=self.outbound
        ) as imap:
            imap_ops.sent_folder(imap)
            imap_ops.folder_state(imap, "INBOX")

    def _read_inbound(self, login: ServerLogin, cursor: str | None) -> InboundPage:
        with imap_ops.imap_session(
            login, context=self.context, timeout=self.timeout, outbound=self.outbound
        ) as imap:
            return read_inbound(imap, cursor)

    def _find_in_sent(self, login: ServerLogin, tag: str) -> SentMessage | None:
        with imap_ops.imap_session(
            login, context=self.context, timeout=self.timeout, outbound=self.outbound
        ) as imap:
            folder = imap_ops.sent_folder(imap)
            imap_ops.select(imap, folder)
            uids = imap_ops.search_uids(imap, "HEADER", TAG_HEADER, imap_ops.quoted(tag))
            if not uids:
                return None
            fetched = imap_ops.fetch(
                imap, uids[-1:], "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID REFERENCES)])"
            )
        if not fetched:
            return None
        headers = fetched[0][1]
        message_id = _header_id(headers, "Message-ID")
        references = MESSAGE_ID.findall(
            str(BytesHeaderParser().parsebytes(headers).get("References", ""))
        )
        return SentMessage(message_id, references[0] if references else message_id, message_id)

    def _keep_copy(self, login: ServerLogin, mime: bytes, tag: str) -> None:
        """Make sure Sent holds the message. It is already sent, so no failure here may reach
        the caller (a retry would send it twice); it is logged instead."""
        try:
            self._timed("imap_file_sent", lambda: self._file_in_sent(login, mime, tag))
        except ProviderError as error:
            log.warning("sent_copy_failed", code=error.code, reason=error.message)

    def _file_in_sent(self, login: ServerLogin, mime: bytes, tag: str) -> None:
        """Look for the host's own copy first; append ours only when there is none."""
        with imap_ops.imap_session(
            login, context=self.context, timeout=self.timeout, outbound=self.outbound
        ) as imap:
            folder = imap_ops.sent_folder(imap)
            imap_ops.select(imap, folder)
            if imap_ops.search_uids(imap, "HEADER", TAG_HEADER, imap_ops.quoted(tag)):
                return
            imap_ops.append(imap, folder, mime)

    def _timed(self, call: str, action: Callable[[], T]) -> T:
        """Run one server conversation, timed and counted like the HTTP providers' requests."""
        started = time.perf_counter()
        label = provider_label(self.name.value)
        try:
            return action()
        except ProviderError as error:
            PROVIDER_ERRORS.labels(label, error.code).inc()
            raise
        finally:
            PROVIDER_REQUEST_SECONDS.labels(label).observe(time.perf_counter() - started)
            log.debug(
                "provider_call",
                provider=self.name.value,
                call=call,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _header_id(message: bytes, name: str) -> str:
    headers = BytesHeaderParser().parsebytes(message)
    found = MESSAGE_ID.findall(str(headers.get(name, "")))
    return found[0] if found else ""
