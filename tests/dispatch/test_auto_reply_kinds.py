"""Which answers are automatic: the header rules of docs/providers.md ("Automatic replies").

Each case is a message as a host hands it over (header names lower-cased); the end-to-end
behaviour on Gmail, Microsoft and IMAP is in test_auto_reply_hold.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sendwell.dispatch.inbound import kind_of
from sendwell.providers.base import InboundMessage, ProviderName


def answer(headers: dict[str, str], subject: str = "Re: Quick question") -> InboundMessage:
    return InboundMessage(
        provider_message_id="m1",
        thread_id="t1",
        message_id_header="<a@example.com>",
        from_address="ann@example.com",
        subject=subject,
        received_at=datetime(2027, 1, 4, 9, 0, tzinfo=UTC),
        in_reply_to="<ours@example.com>",
        headers={name.lower(): value for name, value in headers.items()},
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},  # RFC 3834, Gmail's vacation responder
        {"Auto-Submitted": "Auto-Replied (vacation)"},  # Sieve vacation (RFC 5230), a comment
        {"Auto-Submitted": "auto-generated"},  # Exchange's out-of-office assistant
        {"Auto-Submitted": "auto-notified; owner-email=ann@example.com"},  # RFC 5436
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Out of office"},
        {"X-MS-Exchange-Inbox-Rules-Loop": "ann@example.com"},  # an Exchange inbox rule
        {"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"},
        {"Precedence": "auto_reply"},
        {"Precedence": " Bulk "},
        {"Precedence": "junk"},
    ],
)
def test_automatic_answers(headers: dict[str, str]) -> None:
    for host in ProviderName:
        assert kind_of(answer(headers), host=host) == "auto_reply"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto-Submitted": "no"},  # said in so many words: written by a person
        {"Auto-Submitted": "No (a person wrote this)"},
        {"X-Auto-Response-Suppress": "All"},  # asks others not to answer; people's mail has it
        {"X-Autoreply": "no"},
        {"Precedence": "first-class"},
        {"X-MS-Exchange-Generated-Message-Source": "Client"},
    ],
)
def test_answers_people_wrote(headers: dict[str, str]) -> None:
    assert kind_of(answer(headers), host=ProviderName.MICROSOFT) == "reply"


def test_a_delivery_failure_is_a_bounce_even_though_it_is_automatic() -> None:
    notice = answer(
        {
            "Auto-Submitted": "auto-replied",
            "Content-Type": 'multipart/report; report-type="delivery-status"',
            "X-Failed-Recipients": "ann@example.com",
        },
        subject="Undeliverable: Quick question",
    )
    assert kind_of(notice, host=ProviderName.MICROSOFT) == "bounce"
