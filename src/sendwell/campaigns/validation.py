"""Before a campaign starts: every step parses and renders for every recipient."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from sendwell.campaigns import merge_check, templates, threads
from sendwell.campaigns import repository as repo
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.models import Campaign, Enrollment, MailboxStatus

MAX_PROBLEMS_SHOWN = 100


@dataclass(frozen=True)
class Problem:
    """Something that stops a campaign from starting, with where it is."""

    message: str
    step: int | None = None
    recipient: str | None = None  # the first recipient it concerns
    recipients: int = 0  # how many recipients it concerns (0: none in particular)


class CampaignNotReady(InvalidInput):
    code = "campaign_not_ready"

    def __init__(self, problems: list[Problem], total: int) -> None:
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        super().__init__(
            f"The campaign cannot start yet: {total} problem"
            f"{'s' if total != 1 else ''} to fix{more}."
        )
        self.problems = problems
        self.total = total


def validate(db: Session, campaign: Campaign) -> tuple[list[Problem], int]:
    """Everything that would stop a send, found before any is made (first problems, total)."""
    problems: list[Problem] = []
    total = 0

    def note(problem: Problem) -> None:
        nonlocal total
        total += 1
        if len(problems) < MAX_PROBLEMS_SHOWN:
            problems.append(problem)

    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    if mailbox is None or mailbox.status is not MailboxStatus.CONNECTED:
        note(
            Problem(
                f"The sending account {mailbox.email if mailbox else ''} is not connected.".replace(
                    "  ", " "
                )
            )
        )
    if not campaign.steps:
        note(Problem("Add at least one step."))
    for step in campaign.steps:
        for where, source in (
            ("subject", step.subject),
            ("body", step.body),
            ("HTML body", step.body_html),
        ):
            try:
                templates.check_syntax(source, f"Step {step.position} {where}")
            except templates.TemplateProblem as error:
                note(Problem(error.message, step=step.position))
    if repo.count_enrollments(db, campaign.id) == 0:
        note(Problem("Add at least one recipient."))
    if total:
        return problems, total
    sender = sender_fields(campaign, mailbox)
    grouped: dict[str, _Group] = {}
    recipients = 0
    for enrollment in repo.all_enrollments(db, campaign.id):
        recipients += 1
        fields = templates.merge_fields(recipient_values(enrollment), sender)
        seen: set[str] = set()
        for step in campaign.steps:
            try:
                threads.render_step(campaign.steps, step.position, fields)
            except templates.TemplateProblem as error:
                # One line per problem, not per recipient: a missing field is one problem
                # whichever steps use it; a reply repeats its thread's subject's problem.
                key = f"missing:{error.missing}" if error.missing else error.message
                if key in seen:
                    continue
                seen.add(key)
                group = grouped.setdefault(key, _Group(error, step.position, enrollment.email))
                group.count += 1
                if error.where and error.where not in group.places:
                    group.places.append(error.where)
    uses = merge_check.used_fields(campaign.steps) if grouped else {}
    for group in grouped.values():
        use = uses.get(group.error.missing)
        if use is not None:  # every place the field is read, not only the first that failed
            group.places = use.places
        note(group.problem(recipients))
    return problems, total


@dataclass
class _Group:
    """One problem and the recipients it concerns."""

    error: templates.TemplateProblem
    step: int
    first: str
    count: int = 0
    places: list[str] = field(default_factory=list)

    def problem(self, recipients: int) -> Problem:
        name = self.error.missing
        if name:
            where = ", ".join(self.places)
            message = (
                f"{{{{ {name} }}}} is empty for {self.count} of {recipients} recipient"
                f"{'s' if recipients != 1 else ''} ({where}). "
                + (
                    _sender_hint(name)
                    if name in templates.SENDER_SETTINGS
                    else f'Give them a value, or a default: {{{{ {name} | default("…") }}}}.'
                )
            )
        else:
            message = self.error.message
            if self.count > 1:
                message += f" ({self.count} of {recipients} recipients)"
        return Problem(message, step=self.step, recipient=self.first, recipients=self.count)


def _sender_hint(name: str) -> str:
    return (
        f"Set the {templates.SENDER_SETTINGS[name]} in the sending account's Email Settings "
        f'(Settings tab), or give a default: {{{{ {name} | default("") }}}}.'
    )


def sender_fields(campaign: Campaign, mailbox: Any) -> dict[str, str]:
    name = (mailbox.display_name if mailbox else "") or ""
    return {"sender_name": name, "signature": (mailbox.signature if mailbox else "") or ""}


def recipient_values(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "email": enrollment.email,
        "first_name": enrollment.first_name,
        "last_name": enrollment.last_name,
        "company": enrollment.company,
        "title": enrollment.title,
        "fields": enrollment.fields or {},
    }


def preview(
    db: Session, campaign: Campaign, step_position: int, enrollment_id: int | None = None
) -> tuple[templates.RenderedStep, Enrollment]:
    """One step as one recipient would receive it."""
    step = next((s for s in campaign.steps if s.position == step_position), None)
    if step is None:
        raise NotFound(f"The campaign has no step {step_position}.", code="unknown_step")
    enrollment = (
        repo.get_enrollment(db, campaign.id, enrollment_id)
        if enrollment_id
        else repo.first_enrollment(db, campaign.id)
    )
    if enrollment is None and enrollment_id:
        raise NotFound("This campaign has no such recipient.", code="unknown_recipient")
    if enrollment is None:
        raise NotFound("Add a recipient to preview the emails.", code="no_recipient")
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    fields = templates.merge_fields(recipient_values(enrollment), sender_fields(campaign, mailbox))
    return threads.render_step(campaign.steps, step.position, fields), enrollment
