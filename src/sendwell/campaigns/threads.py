"""Which thread each step's message belongs to, and the subject that keeps it there.

A follow-up sent "as a reply in the same thread" stays in the recipient's conversation only
when its subject matches the thread's: Gmail threads a message only when its threadId, its
References/In-Reply-To and its Subject agree, and Outlook and most IMAP clients group by
subject as well. So a reply step never has a subject of its own: it is the subject of the
step that began the thread, in the usual "Re: " form, and a different one is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sendwell.campaigns import templates
from sendwell.kit.errors import InvalidInput

REPLY_PREFIX = "Re: "


class StepShape(Protocol):
    @property
    def subject(self) -> str: ...

    @property
    def new_thread(self) -> bool: ...

    @property
    def body(self) -> str: ...

    @property
    def body_html(self) -> str: ...


def starts_thread(position: int, step: StepShape) -> bool:
    return position == 1 or step.new_thread


def thread_start(steps: Sequence[StepShape], position: int) -> int:
    """The position of the step whose message begins the thread step `position` is in."""
    for candidate in range(position, 1, -1):
        if steps[candidate - 1].new_thread:
            return candidate
    return 1


def as_reply(subject: str) -> str:
    """A subject in reply form; one already in it is kept as it is."""
    return subject if subject[:3].casefold() == "re:" else REPLY_PREFIX + subject


def subject_template(steps: Sequence[StepShape], position: int) -> str:
    """The subject template a step's message is rendered from (the thread's, for a reply)."""
    return steps[thread_start(steps, position) - 1].subject


def render_step(
    steps: Sequence[StepShape], position: int, fields: dict[str, Any], thread_subject: str = ""
) -> templates.RenderedStep:
    """A step as one recipient receives it. A reply's subject is `thread_subject` (what the
    thread's first message really carried) when known, else the thread's subject rendered for
    this recipient, in reply form."""
    step = steps[position - 1]
    start = thread_start(steps, position)
    if start == position:
        subject = templates.render_header(step.subject, fields, f"Step {position} subject")
    else:
        subject = as_reply(
            thread_subject
            or templates.render_header(steps[start - 1].subject, fields, f"Step {start} subject")
        )
    body, html = templates.render_bodies(step.body, step.body_html, fields, f"Step {position}")
    return templates.RenderedStep(subject, body, html)


def stored_subject(steps: Sequence[StepShape], position: int, subject: str) -> str:
    """The subject to store for a step: a reply's is empty (it inherits the thread's).

    A reply step may repeat the thread's subject, with or without "Re: "; any other subject
    is refused with the reason, because it would silently start a new thread for Gmail.
    """
    subject = subject.strip()
    if starts_thread(position, steps[position - 1]):
        if not subject:
            raise InvalidInput(f"Step {position} needs a subject.", code="invalid_step")
        return subject
    start = thread_start(steps, position)
    inherited = steps[start - 1].subject.strip()
    if subject and _folded(subject) not in (_folded(inherited), _folded(as_reply(inherited))):
        raise InvalidInput(
            f"Step {position} is sent as a reply in the same thread, so its subject is "
            f'step {start}\'s: "{as_reply(inherited)}". Leave its subject empty, or send it '
            f'as a new email to use "{subject}".',
            code="reply_subject_mismatch",
        )
    return ""


def _folded(subject: str) -> str:
    return " ".join(subject.split()).casefold()
