"""Candidate memory: who among new recipients the workspace already emailed, or who stopped.

Before people are added to a campaign, their history in the workspace's other campaigns and
on the suppression list is looked up, so the user sees it and chooses whom to skip. Addresses
on the suppression list are always skipped (`recipients.add_recipients`); replied and bounced
elsewhere are skipped by default; someone only contacted elsewhere is the user's choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.kit.errors import InvalidInput
from sendwell.models import EnrollmentStatus, User

# Kinds of history, strongest first: one address shows only its strongest.
CONTACTED = "contacted"
REPLIED = "replied"
BOUNCED = "bounced"
UNSUBSCRIBED = "unsubscribed"
SUPPRESSED = "suppressed"
CHOOSABLE = (REPLIED, BOUNCED, UNSUBSCRIBED, CONTACTED)
DEFAULT_SKIP = frozenset((REPLIED, BOUNCED, UNSUBSCRIBED))
_RANK = {SUPPRESSED: 0, UNSUBSCRIBED: 1, BOUNCED: 2, REPLIED: 3, CONTACTED: 4}
_BY_STATUS = {
    EnrollmentStatus.REPLIED: REPLIED,
    EnrollmentStatus.BOUNCED: BOUNCED,
    EnrollmentStatus.UNSUBSCRIBED: UNSUBSCRIBED,
}
# The mapping page's choices, after "Skip people who, in another campaign,".
SKIP_LABELS = {
    REPLIED: "replied",
    BOUNCED: "bounced",
    UNSUBSCRIBED: "unsubscribed",
    CONTACTED: "were emailed (without replying)",
}
WORDS = {
    CONTACTED: "contacted",
    REPLIED: "replied",
    BOUNCED: "bounced",
    UNSUBSCRIBED: "unsubscribed",
    SUPPRESSED: "on the suppression list",
}


@dataclass(frozen=True)
class Seen:
    """An address's strongest history elsewhere in the workspace."""

    email: str
    kind: str
    campaign: str  # the campaign's name, or "a teammate's campaign"; "" for the suppression list
    when: datetime | None = None
    detail: str = ""  # the suppression list's reason

    @property
    def words(self) -> str:
        if self.kind == SUPPRESSED:
            return f"on the suppression list ({self.detail.replace('_', ' ')})"
        return f"{WORDS[self.kind]} in “{self.campaign}”"

    @property
    def skip_reason(self) -> str:
        """The reason a skipped row shows; `recipients.skip_kind` counts it by its first part."""
        return f"{WORDS[self.kind]} in another campaign (“{self.campaign}”)"


def parse_skip(values: Iterable[str]) -> frozenset[str]:
    """The kinds a user chose to skip, refused with the choices when one is unknown."""
    chosen = {value.strip().lower() for value in values if value.strip()}
    unknown = sorted(chosen - set(CHOOSABLE))
    if unknown:
        raise InvalidInput(
            f"Unknown history to skip: {', '.join(unknown)}; choose from {', '.join(CHOOSABLE)}.",
            code="invalid_skip_previous",
        )
    return frozenset(chosen)


def history(
    db: Session, user: User, workspace_id: int, campaign_id: int, emails: list[str]
) -> dict[str, Seen]:
    """Each address's strongest history in the workspace's other campaigns.

    A campaign's name is shown only to its owner and to admins; a member sees "a teammate's
    campaign" for someone else's.
    """
    found: dict[str, Seen] = {}
    for email, status, steps_sent, name, owner_id, last_sent in repo.elsewhere(
        db, workspace_id, campaign_id, emails
    ):
        kind = _BY_STATUS.get(status, CONTACTED if steps_sent else "")
        if not kind:
            continue
        shown = name if user.is_admin or owner_id == user.id else "a teammate's campaign"
        seen = Seen(email, kind, shown, last_sent)
        if email not in found or _RANK[kind] < _RANK[found[email].kind]:
            found[email] = seen
    return found


def with_suppressions(
    db: Session, user: User, workspace_id: int, campaign_id: int, emails: list[str]
) -> dict[str, Seen]:
    """`history` and the suppression list together (what the import's preview shows)."""
    found = history(db, user, workspace_id, campaign_id, emails)
    for email, reason in repo.suppressed(db, workspace_id, emails).items():
        found[email] = Seen(email, SUPPRESSED, "", None, reason)
    return found
