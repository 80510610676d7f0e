"""The three kinds of mail host a campaign can send through, behind one test interface.

Google and Microsoft are the sandbox over real HTTP; "Other" is real Dovecot and SMTP servers on
loopback. Each says what its recipients received, lets a recipient answer, breaks the
connection the way that host breaks, and reconnects it the way its user would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from typing import Any, Protocol

from fastapi.testclient import TestClient

from tests.conftest import csrf_from
from tests.imap_smtp.conftest import SENDER as SERVER_SENDER
from tests.imap_smtp.conftest import MailServers, link_other
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

# Recipients every host can deliver to (the mail servers know these users).
PEOPLE = ["ann@example.com", "bob@example.com", "cy@example.com"]


@dataclass(frozen=True)
class Received:
    """One message as its recipient has it."""

    to: str
    subject: str
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]


class Host(Protocol):
    name: str
    address: str

    def link(self, client: TestClient) -> None: ...

    def received(self, person: str) -> list[Received]: ...

    def reply(self, message: Received) -> None: ...

    def answer(self, message: Received, subject: str, headers: dict[str, str]) -> None:
        """The recipient's mail system answers: its subject, and headers of its own."""
        ...

    def break_connection(self) -> None: ...

    def reconnect(self, client: TestClient, mailbox_id: int) -> None: ...


def _reader(headers: Any) -> Callable[[str], str]:
    """A header's value by name ("" when absent) from a dict or a parsed message."""
    return lambda name: str(headers.get(name, ""))


def _received(to: str, headers: Callable[[str], str]) -> Received:
    return Received(
        to=to,
        subject=headers("Subject"),
        message_id=headers("Message-ID"),
        in_reply_to=headers("In-Reply-To"),
        references=tuple(headers("References").split()),
    )


@dataclass
class SandboxHost:
    """A Google or Microsoft mailbox in the sandbox."""

    name: str
    address: str
    sandbox: Sandbox

    def link(self, client: TestClient) -> None:
        response = link(client, self.address)
        assert response.status_code in (200, 303), response.text

    def received(self, person: str) -> list[Received]:
        found = []
        for message in self.sandbox.sent(self.address):
            if not message.get("delivered", True):
                continue
            addresses = [a.lower() for _n, a in getaddresses(message["to"])]
            if person in addresses:
                headers: dict[str, Any] = message["headers"]
                found.append(_received(person, _reader(headers)))
        return found

    def reply(self, message: Received) -> None:
        self.sandbox.admin(
            "reply",
            {"mailbox": self.address, "to_message_id": message.message_id, "from": message.to},
        )

    def answer(self, message: Received, subject: str, headers: dict[str, str]) -> None:
        self.sandbox.admin(
            "reply",
            {
                "mailbox": self.address,
                "to_message_id": message.message_id,
                "from": message.to,
                "subject": subject,
                "headers": headers,
            },
        )

    def break_connection(self) -> None:
        self.sandbox.admin("revoke", {"mailbox": self.address})

    def reconnect(self, client: TestClient, mailbox_id: int) -> None:
        self.link(client)


@dataclass
class ServerHost:
    """An "Other" account on real IMAP and SMTP servers."""

    mail: MailServers
    name: str = "imap"
    address: str = SERVER_SENDER
    password: str = "first app password"

    def link(self, client: TestClient) -> None:
        response = link_other(client, self.mail.form(password=self.password))
        assert response.status_code == 303, response.text

    def received(self, person: str) -> list[Received]:
        return [_received(person, _reader(m)) for m in self.mail.messages(person)]

    def reply(self, message: Received) -> None:
        self.answer(message, "", {})

    def answer(self, message: Received, subject: str, headers: dict[str, str]) -> None:
        answer = EmailMessage()
        answer["From"] = message.to
        answer["To"] = self.address
        answer["Subject"] = subject or "Re: " + message.subject.removeprefix("Re: ")
        answer["Message-ID"] = make_msgid(domain="example.com")
        answer["In-Reply-To"] = message.message_id
        answer["References"] = " ".join([*message.references, message.message_id])
        for name, value in headers.items():
            answer[name] = value
        answer.set_content("Sounds good.")
        self.mail.write_into(self.address, answer)

    def break_connection(self) -> None:
        self.password = "a new app password"
        self.mail.dovecot.set_password(self.address, self.password)

    def reconnect(self, client: TestClient, mailbox_id: int) -> None:
        page = f"/mailboxes/{mailbox_id}/password"
        response = client.post(
            page,
            data={"csrftoken": csrf_from(client.get(page).text), **self.mail.form(self.password)},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
