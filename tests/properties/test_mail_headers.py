"""No merge field, subject or name can add a line to a message's headers.

Whatever a recipient's fields, a subject template or a display name contain — line breaks of
every kind, NUL, other control characters, any Unicode — rendering and building the message
either refuse with our own error or produce a header section in which every line is one of the
headers we wrote (or its folded continuation).
"""

from __future__ import annotations

from email import message_from_bytes, policy

from hypothesis import given, settings
from hypothesis import strategies as st

from sendwell.campaigns.templates import TemplateProblem, merge_fields, render_step
from sendwell.dispatch.mime import Envelope, build_message
from sendwell.kit.errors import InvalidInput
from sendwell.providers.base import TAG_HEADER

HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    TAG_HEADER.lower(),
    "in-reply-to",
    "references",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}
BREAKS = ["\r", "\n", "\r\n", "\0", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]
# Text that tries hard: header-looking lines and every kind of line break, mixed with anything.
hostile = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(BREAKS),
        st.sampled_from(["Bcc: victim@example.com", "X-Injected: yes", ": ", " ", "=?utf-8?q?"]),
    ),
    max_size=8,
).map("".join)
subjects = st.sampled_from(
    [
        "Hello {{ first_name }}",
        "{{ company }} and {{ title }}",
        "Re: {{ favourite }}",
        "{{ first_name }}{{ last_name }}",
        "Plain subject",
    ]
)


def _header_lines(message: bytes) -> list[bytes]:
    head = message.split(b"\n\n", 1)[0]
    assert b"\0" not in head
    assert b"\r" not in head.replace(b"\r\n", b"\n")
    return head.split(b"\n")


@settings(max_examples=300, deadline=None)
@given(
    first_name=hostile,
    last_name=hostile,
    company=hostile,
    title=hostile,
    favourite=hostile,
    subject=subjects,
    sender_name=hostile,
    recipient_name=hostile,
)
def test_header_section_holds_only_our_headers(
    first_name: str,
    last_name: str,
    company: str,
    title: str,
    favourite: str,
    subject: str,
    sender_name: str,
    recipient_name: str,
) -> None:
    fields = merge_fields(
        {
            "first_name": first_name,
            "last_name": last_name,
            "company": company,
            "title": title,
            "fields": {"favourite": favourite},
        },
        {"sender_name": sender_name},
    )
    fields.setdefault("favourite", "x")
    for name in ("first_name", "last_name", "company", "title"):
        fields.setdefault(name, "x")
    try:
        step = render_step(subject, "Hi {{ first_name }}", "<p>{{ company }}</p>", fields, "Step 1")
        message = build_message(
            step,
            Envelope(
                sender_email="ada@example.com",
                sender_name=sender_name,
                recipient_email="grace@example.com",
                recipient_name=recipient_name,
                tag="tag-1",
                in_reply_to="<earlier@example.com>",
                references=("<first@example.com>",),
                unsubscribe_url="https://sendwell.example/u/abc.def",
            ),
        )
    except (TemplateProblem, InvalidInput):
        return
    lines = _header_lines(message)
    names = {line.split(b":", 1)[0].decode().lower() for line in lines if line[:1] not in b" \t"}
    assert names <= HEADERS, names - HEADERS
    parsed = message_from_bytes(message, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "grace@example.com"
    assert parsed["From"].addresses[0].addr_spec == "ada@example.com"
    assert not {"\n", "\r"} & set(str(parsed["Subject"]))
    assert parsed.get_all("Bcc") is None
