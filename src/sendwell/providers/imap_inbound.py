"""New INBOX messages since a UID cursor, as the metadata the reply and bounce rules read.

The cursor is ``"<UIDVALIDITY>:<last UID read>"``. A different UIDVALIDITY means the server
renumbered the folder (RFC 9051 §2.3.1.1): the newest messages are read again and the cursor
starts afresh; reading a reply twice is harmless, each stops a sequence once.
"""

from __future__ import annotations

import imaplib
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr

from sendwell.kit.clock import utcnow
from sendwell.providers import imap_mailbox as imap_ops
from sendwell.providers.base import InboundMessage, InboundPage

INBOX = "INBOX"
PAGE_SIZE = 200
RESTART_WINDOW = 100
HEADER_FIELDS = (
    "FROM SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES CONTENT-TYPE AUTO-SUBMITTED "
    "X-AUTOREPLY X-AUTORESPOND X-MS-EXCHANGE-INBOX-RULES-LOOP "
    "X-MS-EXCHANGE-GENERATED-MESSAGE-SOURCE PRECEDENCE X-FAILED-RECIPIENTS"
)
# A delivery report carries the original's headers; 256 KiB is plenty for them.
REPORT_BYTES = 262_144
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def read_inbound(imap: imaplib.IMAP4, cursor: str | None) -> InboundPage:
    """INBOX messages after the cursor, oldest first, and where to continue."""
    state = imap_ops.folder_state(imap, INBOX)
    validity, last = _parse_cursor(cursor)
    if cursor is None or validity is None:
        return InboundPage([], f"{state.uidvalidity}:{state.uidnext - 1}")
    imap_ops.select(imap, INBOX)
    if validity != state.uidvalidity:
        uids = imap_ops.search_uids(imap, "ALL")[-RESTART_WINDOW:]
    else:
        # "n:*" always includes the newest message, even when its UID is below n.
        uids = [u for u in imap_ops.search_uids(imap, "UID", f"{last + 1}:*") if u > last]
        uids = uids[:PAGE_SIZE]
    messages = _messages(imap, state.uidvalidity, uids)
    newest = max(uids, default=last if validity == state.uidvalidity else 0)
    return InboundPage(messages, f"{state.uidvalidity}:{newest}")


def _parse_cursor(cursor: str | None) -> tuple[int | None, int]:
    if not cursor:
        return None, 0
    validity, _, last = cursor.partition(":")
    if not (validity.isdigit() and last.isdigit()):
        return None, 0
    return int(validity), int(last)


def _messages(imap: imaplib.IMAP4, validity: int, uids: list[int]) -> list[InboundMessage]:
    items = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])"
    found: list[InboundMessage] = []
    for line, literal in imap_ops.fetch(imap, uids, items):
        uid = imap_ops.uid_of(line)
        if not uid:
            continue
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(literal)
        message = _inbound(validity, uid, _received_at(line), headers)
        if _is_delivery_report(headers):
            message = _with_report(imap, uid, message)
        found.append(message)
    return sorted(found, key=lambda m: int(m.provider_message_id.rpartition(":")[2]))


def _is_delivery_report(headers: Message) -> bool:
    report_type = headers.get_param("report-type", "")
    return headers.get_content_type() == "multipart/report" and (
        isinstance(report_type, str) and report_type.lower() == "delivery-status"
    )


def _inbound(validity: int, uid: int, received_at: datetime, headers: Message) -> InboundMessage:
    values = {name.lower(): _one_line(str(value)) for name, value in headers.items()}
    references = tuple(MESSAGE_ID.findall(values.get("references", "")))
    in_reply_to = next(iter(MESSAGE_ID.findall(values.get("in-reply-to", ""))), "")
    message_id = next(iter(MESSAGE_ID.findall(values.get("message-id", ""))), "")
    return InboundMessage(
        provider_message_id=f"{validity}:{uid}",
        thread_id=_thread_root(references, in_reply_to, message_id),
        message_id_header=message_id,
        from_address=parseaddr(values.get("from", ""))[1].lower(),
        subject=_decoded(values.get("subject", "")),
        received_at=received_at,
        in_reply_to=in_reply_to,
        references=references,
        headers=values,
    )


def _thread_root(references: tuple[str, ...], in_reply_to: str, message_id: str) -> str:
    """IMAP has no thread ids: a thread is named by its first message's Message-ID."""
    if references:
        return references[0]
    return in_reply_to or message_id


def _with_report(imap: imaplib.IMAP4, uid: int, message: InboundMessage) -> InboundMessage:
    """Which recipients failed and which message of ours bounced, from the report itself."""
    fetched = imap_ops.fetch(imap, [uid], f"(UID BODY.PEEK[]<0.{REPORT_BYTES}>)")
    if not fetched:
        return message
    report = message_from_bytes(fetched[0][1], policy=policy.compat32)
    failed, originals = _report_details(report)
    headers = dict(message.headers)
    if failed and "x-failed-recipients" not in headers:
        headers["x-failed-recipients"] = ", ".join(failed)
    references = tuple(dict.fromkeys([*message.references, *originals]))
    return InboundMessage(
        provider_message_id=message.provider_message_id,
        thread_id=message.thread_id,
        message_id_header=message.message_id_header,
        from_address=message.from_address,
        subject=message.subject,
        received_at=message.received_at,
        in_reply_to=message.in_reply_to,
        references=references,
        headers=headers,
    )


def _report_details(report: Message) -> tuple[list[str], list[str]]:
    failed: list[str] = []
    originals: list[str] = []
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in part.get_payload():
                if isinstance(block, Message) and _action_failed(block):
                    failed += _report_addresses(block.get_all("Final-Recipient", []))
        elif kind in ("text/rfc822-headers", "message/rfc822"):
            originals += _original_ids(part)
    return list(dict.fromkeys(failed)), originals


def _action_failed(block: Message) -> bool:
    return str(block.get("Action", "failed")).strip().lower() == "failed"


def _report_addresses(fields: list[str]) -> list[str]:
    # Final-Recipient: rfc822; ann@example.com
    values = [str(field).partition(";")[2].strip() for field in fields]
    return [address.lower() for _name, address in getaddresses(values) if address]


def _original_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0] if payload and isinstance(payload[0], Message) else None
        return MESSAGE_ID.findall(str(inner.get("Message-ID", ""))) if inner else []
    raw = part.get_payload(decode=True)
    headers = BytesHeaderParser().parsebytes(raw if isinstance(raw, bytes) else b"")
    return MESSAGE_ID.findall(str(headers.get("Message-ID", "")))


def _received_at(line: bytes) -> datetime:
    match = INTERNALDATE.search(line)
    if not match:
        return utcnow()
    try:
        moment = datetime.strptime(match.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return utcnow()
    return moment.astimezone(UTC)


def _decoded(value: str) -> str:
    """A header with RFC 2047 encoded words made readable; left as it is when malformed."""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        return value


def _one_line(value: str) -> str:
    return " ".join(value.split())
